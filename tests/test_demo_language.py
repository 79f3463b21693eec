"""The demo language: its truth is a proper distribution, sampling follows it, the tokenizer
has one token per word and loads back with AutoTokenizer."""

import random
from collections import Counter

import pytest

from worker.distill import demo_language as lang


def test_every_prefix_has_a_proper_distribution():
    rng = random.Random(0)
    for _ in range(300):
        words = lang.sample_sentence(rng)
        for i in range(len(words)):
            dist = lang.next_word_distribution(words[:i])
            assert sum(dist.values()) == pytest.approx(1.0)
            assert dist[words[i]] > 0
        assert words[-1] == "." and 8 <= len(words) <= 11


def test_synonyms_have_skewed_frequencies_that_sampling_reproduces():
    dist = lang.noun_given_adj("lazy")
    assert dist["cat"] > dist["kitten"] > dist["kitty"] > dist["tomcat"] > dist["moggy"] > 0
    rng = random.Random(1)
    counts = Counter(lang.sample_sentence(rng)[2] for _ in range(20000))
    marginal = {}
    for adj, pa in lang.ADJS.items():
        for noun, pn in lang.noun_given_adj(adj).items():
            marginal[noun] = marginal.get(noun, 0.0) + pa * pn
    for noun in ("cat", "dog", "kitten", "moggy"):
        assert counts[noun] / 20000 == pytest.approx(marginal[noun], abs=0.01)


def test_second_verb_differs_from_the_first():
    dist = lang.next_word_distribution(
        ["the", "lazy", "cat", "sleeps", "on", "the", "mat", "then", "it"]
    )
    assert "sleeps" not in dist and sum(dist.values()) == pytest.approx(1.0)


def test_tokenizer_is_one_token_per_word_and_round_trips(tmp_path):
    from transformers import AutoTokenizer

    from worker.distill.demo import build_tokenizer

    build_tokenizer().save_pretrained(tmp_path)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    text = "the lazy moggy naps on a sofa then it purrs ."
    ids = tok(text)["input_ids"]
    assert ids[0] == tok.bos_token_id and len(ids) == len(text.split()) + 1
    assert tok.unk_token_id not in ids
    assert tok.decode(ids, skip_special_tokens=True) == text
    assert set(lang.vocabulary()) <= set(tok.get_vocab())
