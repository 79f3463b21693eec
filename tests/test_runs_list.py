"""The runs list filters, sorts and pages in SQL with the results of the former Python path (kept
here as the reference), on SQLite and on PostgreSQL: tags and text with quotes, % and _, and
non-ASCII letters included."""

import itertools
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from backend.db.migrate import upgrade
from backend.db.models import Run, Sweep
from backend.services.runs import SORT_KEYS, list_runs

# The former list_runs, in Python over every run: the reference the SQL must agree with.
REFERENCE_KEYS = {
    "id": lambda r: r.id,
    "name": lambda r: r.name.lower(),
    "status": lambda r: r.status,
    "created": lambda r: r.created_at.replace(tzinfo=None),
    "progress": lambda r: r.step / max(r.total_steps, 1),
    "temperature": lambda r: r.config.get("temperature"),
    "alpha": lambda r: r.config.get("alpha"),
    "soft": lambda r: (r.latest or {}).get("train/soft_loss"),
    "hard": lambda r: (r.latest or {}).get("train/hard_loss"),
}


def _matches(run: Run, text: str) -> bool:
    c = run.config or {}
    haystack = [run.name, run.note or "", c.get("teacher", ""), c.get("student", "")]
    haystack += [c.get("dataset", ""), c.get("divergence", ""), *(run.tags or [])]
    return any(text in str(h).lower() for h in haystack)


def reference(
    runs, *, status=None, tag=None, q=None, sweep_id=None, sort="-id", limit=500, offset=0
):
    runs = sorted(runs, key=lambda r: -r.id)
    if status:
        runs = [r for r in runs if r.status in status]
    if sweep_id is not None:
        runs = [r for r in runs if r.sweep_id == sweep_id]
    if tag:
        runs = [r for r in runs if tag in (r.tags or [])]
    if q and q.strip():
        runs = [r for r in runs if _matches(r, q.strip().lower())]
    descending, name = sort.startswith("-"), sort.lstrip("-")
    key = REFERENCE_KEYS[name]
    present = [r for r in runs if key(r) is not None]
    missing = [r for r in runs if key(r) is None]
    present.sort(key=lambda r: (key(r), r.id), reverse=descending)
    runs = present + missing
    return [r.id for r in runs[offset : offset + limit]], len(runs)


NAMES = [
    "alpha run", "Alpha Run", "beta", "Élan vital", "élan", "zeta", "Straße", "ÄRGER",
    "50% off", "under_score", 'say "hi"', "it's", "back\\slash", "日本語の実験", "",
]  # fmt: skip
TAGS = [
    "baseline", "hot", 'q"uote', "it's", "100%", "a_b", "aXb", "Ünïcode", "ünïcode", "日本",
    "back\\slash", "%", "_",
]  # fmt: skip
NOTES = [None, "lr too HIGH", "Überraschung: 5% better", "under_score note", "kein Fehler"]
TEACHERS = ["demo-teacher", "Teacher-Ω", "models/big_one"]
STATUSES = ["queued", "running", "succeeded", "failed", "cancelled", "lost"]


def _fill(session: Session) -> None:
    sweeps = [Sweep(name=f"sweep {i}", grid={"temperature": [1, 2]}) for i in range(2)]
    session.add_all(sweeps)
    session.flush()
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(90):
        config = {
            "teacher": TEACHERS[i % 3],
            "student": f"demo-student-{'ÿ' if i % 7 == 0 else 's'}",
            "dataset": "demo_data%" if i % 5 == 0 else "chat-ünï",
            "divergence": ["forward_kl", "reverse_kl", "jsd"][i % 3],
        }
        if i % 4:  # some runs without a temperature, several with the same one
            config["temperature"] = [1.0, 2.0, 0.5, 4][i % 4]
        if i % 6:
            config["alpha"] = (i % 5) / 4
        latest = {}
        if i % 3:
            latest["train/soft_loss"] = round(1 / (1 + i % 8), 3)
        if i % 2:
            latest["train/hard_loss"] = None if i % 10 == 1 else float(i % 9)
        session.add(
            Run(
                name=NAMES[i % len(NAMES)],
                tags=[TAGS[(i * k) % len(TAGS)] for k in range(i % 4)],
                config=config,
                status=STATUSES[i % len(STATUSES)],
                created_at=base + timedelta(minutes=(i * 7) % 40),  # ties too
                step=(i * 13) % 50,
                total_steps=[0, 1, 50, 100][i % 4],
                latest=latest,
                note=NOTES[i % len(NOTES)],
                sweep_id=sweeps[i % 2].id if i % 3 == 0 else None,
            )
        )


def _own_postgres(postgres_url: str):
    """A database of this module's own beside the session's (other tests count their runs)."""
    url = sa.engine.make_url(postgres_url)
    name = f"{url.database}_{uuid.uuid4().hex[:6]}"
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    return admin, name, url.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def db(request, tmp_path_factory):
    """An engine on a database migrated to head and holding 90 varied runs."""
    admin = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('runs-list') / 'runs.db'}"
    else:
        admin, name, url = _own_postgres(request.getfixturevalue("postgres_url"))
    upgrade(url)
    engine = sa.create_engine(url)
    with Session(engine) as s:
        _fill(s)
        s.commit()
    yield engine
    engine.dispose()
    if admin is not None:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _check(engine, **params) -> None:
    with Session(engine) as s:
        everything = list(s.scalars(select(Run)))
        want_ids, want_count = reference(everything, **params)
        runs, count, _ = list_runs(session=s, **params)
    assert ([r.id for r in runs], count) == (want_ids, want_count), params


SORTS = [f"{d}{k}" for k in SORT_KEYS for d in ("", "-")]


@pytest.mark.parametrize("sort", SORTS)
def test_every_sort_key_both_ways_as_before(db, sort):
    _check(db, sort=sort)
    _check(db, sort=sort, limit=7, offset=5)
    _check(db, sort=sort, status=["queued", "lost"], q="run")


QUERIES = ["run", "RUN", "  alpha ", "élan", "ÉLAN", "straße", "ärger", "ünï", "ÜNÏ", "日本", "%"]
QUERIES += ["_", "5%", "a_b", '"', "'", "\\", "teacher-ω", "big_one", "jsd", "KL", "nothing"]


@pytest.mark.parametrize("q", QUERIES)
def test_text_search_as_before(db, q):
    _check(db, q=q)
    _check(db, q=q, sort="name")


@pytest.mark.parametrize("tag", [*TAGS, "ünïcode", "Baseline", "100", "a", "nothing"])
def test_tag_filter_as_before(db, tag):
    _check(db, tag=tag)
    _check(db, tag=tag, q="a", sort="-temperature")


def test_status_sweep_and_pages_as_before(db):
    with Session(db) as s:
        sweep_ids = list(s.scalars(select(Sweep.id)))
    for n in range(1, 4):
        for states in itertools.combinations(STATUSES, n):
            _check(db, status=list(states))
    for sweep_id in [*sweep_ids, 999]:
        _check(db, sweep_id=sweep_id, sort="-soft")
    for offset in (0, 1, 40, 89, 90, 500):
        _check(db, limit=13, offset=offset, sort="progress")
    # A text or tag filter counts its matches along with the page: also past its last page.
    for offset in (0, 5, 13, 89, 500):
        _check(db, limit=13, offset=offset, q="run")
        _check(db, limit=13, offset=offset, tag="hot", q="a")


def test_every_tag_in_use_sorted_by_code_point(db):
    with Session(db) as s:
        want = sorted({t for tags in s.scalars(select(Run.tags)) for t in tags or []})
        assert list_runs(session=s, limit=1)[2] == want
    assert "Ünïcode" in want and "ünïcode" in want and '"' not in want


def test_only_the_page_is_read(db):
    """The page is cut in SQL: the only statement reading whole runs has a LIMIT, and listing 5
    of 90 runs returns 5 rows."""
    statements = []

    def seen(_conn, _cursor, statement, *_):
        statements.append(" ".join(statement.split()))

    event.listen(db, "before_cursor_execute", seen)
    try:
        with Session(db) as s:
            runs, count, _ = list_runs(session=s, sort="-soft", q="a", limit=5)
    finally:
        event.remove(db, "before_cursor_execute", seen)
    assert len(runs) == 5 and count > 5
    whole = [st for st in statements if "runs.config" in st.split(" FROM ")[0]]
    assert len(whole) == 1 and " LIMIT " in whole[0], whole


@pytest.mark.parametrize(
    ("params", "field"),
    [({"offset": 2**63}, "offset"), ({"q": "a\x00b"}, "q"), ({"tag": "\x00"}, "tag")],
)
def test_a_bad_list_parameter_is_422_naming_it(client, params, field):
    """An offset past the databases' integers, a NUL (which PostgreSQL refuses in text)."""
    r = client.get("/api/runs", params=params)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["query", field]
