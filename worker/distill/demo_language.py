"""The demo language: sentences whose true next-word distribution is known at every position.

    DET ADJ NOUN VERB PREP DET2 PLACE ( . | then it VERB2 . | later it VERB2 . )

Each NOUN belongs to a class (feline, canine, bird, rodent, fish) and is drawn from five
near-synonyms at 70/15/8/5/2 %, so a softened distribution has rare-but-right words to reveal.
The adjective tilts the class odds, the verb depends on the class, the preposition on the kind
of verb, the place on the class (long range), and the second verb on the class and differs from
the first. One token per word, so the truth over words is the truth over tokens. Pure Python: no
torch here, so the api can describe the language too.
"""

import random
from functools import cache

SYNONYM_WEIGHTS = (0.70, 0.15, 0.08, 0.05, 0.02)
NOUNS = {
    "feline": ("cat", "kitten", "kitty", "tomcat", "moggy"),
    "canine": ("dog", "puppy", "hound", "pooch", "mutt"),
    "bird": ("bird", "sparrow", "finch", "robin", "wren"),
    "rodent": ("mouse", "rat", "hamster", "gerbil", "vole"),
    "fish": ("fish", "goldfish", "minnow", "carp", "guppy"),
}
CLASS_PRIOR = {"feline": 0.3, "canine": 0.3, "bird": 0.15, "rodent": 0.15, "fish": 0.1}
DETS = {"the": 0.65, "a": 0.25, "that": 0.10}
ADJS = {
    "lazy": 0.15,
    "tiny": 0.12,
    "big": 0.12,
    "happy": 0.15,
    "old": 0.12,
    "small": 0.10,
    "quick": 0.12,
    "sleepy": 0.12,
}
ADJ_TILT = {  # multiplies the class prior, then renormalised
    "lazy": {"feline": 3.0},
    "tiny": {"rodent": 2.5, "bird": 2.0},
    "big": {"canine": 3.0},
    "quick": {"bird": 2.0, "rodent": 1.5},
    "sleepy": {"feline": 2.0, "canine": 1.5},
    "small": {"fish": 2.0, "rodent": 2.0},
    "happy": {},
    "old": {},
}
VERBS = {
    "feline": {"sleeps": 0.40, "purrs": 0.25, "naps": 0.20, "hides": 0.15},
    "canine": {"runs": 0.35, "barks": 0.30, "sleeps": 0.20, "digs": 0.15},
    "bird": {"flies": 0.40, "sings": 0.30, "hops": 0.20, "rests": 0.10},
    "rodent": {"hides": 0.35, "runs": 0.25, "nibbles": 0.25, "digs": 0.15},
    "fish": {"swims": 0.60, "floats": 0.25, "hides": 0.15},
}
VERB_KIND = {
    "sleeps": "rest",
    "naps": "rest",
    "floats": "rest",
    "rests": "rest",
    "purrs": "rest",
    "runs": "move",
    "flies": "move",
    "swims": "move",
    "hops": "move",
    "hides": "hide",
    "digs": "hide",
    "nibbles": "hide",
    "sings": "hide",
    "barks": "hide",
}
PREPS = {
    "rest": {"on": 0.5, "in": 0.3, "near": 0.2},
    "move": {"to": 0.4, "across": 0.3, "through": 0.2, "near": 0.1},
    "hide": {"under": 0.4, "behind": 0.35, "near": 0.25},
}
DET2 = {"the": 0.7, "a": 0.3}
PLACES = {
    "feline": {"mat": 0.4, "sofa": 0.3, "box": 0.2, "garden": 0.1},
    "canine": {"park": 0.4, "yard": 0.3, "garden": 0.2, "sofa": 0.1},
    "bird": {"tree": 0.4, "roof": 0.3, "garden": 0.2, "field": 0.1},
    "rodent": {"barn": 0.4, "field": 0.3, "wall": 0.2, "box": 0.1},
    "fish": {"pond": 0.5, "river": 0.3, "tank": 0.2},
}
ENDINGS = {".": 0.5, "then": 0.3, "later": 0.2}
END = "."

NOUN_CLASS = {noun: cls for cls, nouns in NOUNS.items() for noun in nouns}


def _normalise(d: dict[str, float]) -> dict[str, float]:
    z = sum(d.values())
    return {k: v / z for k, v in d.items()}


def class_given_adj(adj: str) -> dict[str, float]:
    tilt = ADJ_TILT[adj]
    return _normalise({c: p * tilt.get(c, 1.0) for c, p in CLASS_PRIOR.items()})


def noun_given_class(cls: str) -> dict[str, float]:
    return dict(zip(NOUNS[cls], SYNONYM_WEIGHTS, strict=True))


def noun_given_adj(adj: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for cls, pc in class_given_adj(adj).items():
        for noun, pn in noun_given_class(cls).items():
            out[noun] = out.get(noun, 0.0) + pc * pn
    return out


@cache
def vocabulary() -> tuple[str, ...]:
    """Every word the language can produce, in a fixed order."""
    words: list[str] = []
    tables = [
        DETS,
        ADJS,
        *[noun_given_class(c) for c in NOUNS],
        *VERBS.values(),
        *PREPS.values(),
        DET2,
        *PLACES.values(),
        ENDINGS,
        {"it": 1.0},
    ]
    for table in tables:
        for w in table:
            if w not in words:
                words.append(w)
    return tuple(words)


def next_word_distribution(prefix: list[str]) -> dict[str, float]:
    """The true distribution of the next word given the words of the current sentence so far
    (an empty prefix is a sentence start)."""
    n = len(prefix)
    if n == 0:
        return dict(DETS)
    if n == 1:
        return dict(ADJS)
    if n == 2:
        return noun_given_adj(prefix[1])
    cls = NOUN_CLASS[prefix[2]]
    if n == 3:
        return dict(VERBS[cls])
    if n == 4:
        return dict(PREPS[VERB_KIND[prefix[3]]])
    if n == 5:
        return dict(DET2)
    if n == 6:
        return dict(PLACES[cls])
    if n == 7:
        return dict(ENDINGS)
    if n == 8:  # after "then"/"later"
        return {"it": 1.0}
    if n == 9:
        return _normalise({v: p for v, p in VERBS[cls].items() if v != prefix[3]})
    if n == 10:
        return {END: 1.0}
    raise ValueError(f"a sentence has at most 11 words, got prefix {prefix!r}")


def _draw(rng: random.Random, dist: dict[str, float]) -> str:
    return rng.choices(list(dist), weights=list(dist.values()))[0]


def sample_sentence(rng: random.Random) -> list[str]:
    """One sentence, drawn word by word from the true distributions (ends with '.')."""
    words: list[str] = []
    while True:
        w = _draw(rng, next_word_distribution(words))
        words.append(w)
        if w == END:
            return words


def sample_corpus(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(sample_sentence(rng)) for _ in range(n)]


def stream_truth(words: list[str]) -> list[dict[str, float]]:
    """Distributions for predicting words[0], words[1], ..., words[-1] from what precedes."""
    out, sentence = [], []
    for w in words:
        out.append(next_word_distribution(sentence))
        sentence = [] if w == END else [*sentence, w]
    return out
