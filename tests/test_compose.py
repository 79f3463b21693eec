"""docker-compose.yml cannot be started here (no Docker engine): check that it parses and that
its commands and variables match the CLI and the settings."""

from pathlib import Path

import yaml

from backend.cli import build_parser
from backend.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_services_and_gpu_reservation():
    services = _compose()["services"]
    assert {"api", "worker", "inspect-worker", "redis", "postgres", "flower"} <= set(services)
    gpu = services["worker"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and gpu["count"] == 1 and "gpu" in gpu["capabilities"]
    assert services["flower"]["profiles"] == ["monitoring"]
    for name in ("api", "worker", "inspect-worker", "redis", "postgres"):
        assert "healthcheck" in services[name], name
    for name in ("api", "worker", "inspect-worker"):
        assert "artifacts:/data" in services[name]["volumes"]  # one shared artifact directory


def test_commands_are_valid_cli_invocations():
    parser = build_parser()
    services = _compose()["services"]
    for name in ("api", "worker", "inspect-worker"):
        cmd = services[name]["command"]
        assert cmd[0] == "distillscope", name
        parser.parse_args(cmd[1:])  # raises SystemExit on an unknown command or flag
    queues = {services[n]["command"][-1] for n in ("worker", "inspect-worker")}
    assert queues == {"train", "inspect"}
    assert services["flower"]["command"][:3] == ["celery", "-A", "worker.tasks"]


def test_environment_names_real_settings():
    env = _compose()["x-env"]
    fields = {f"DISTILLSCOPE_{name.upper()}" for name in Settings.model_fields}
    assert set(env) <= fields, set(env) - fields
    s = Settings(**{k.removeprefix("DISTILLSCOPE_").lower(): v for k, v in env.items()})
    assert s.db_url.startswith("postgresql+psycopg://") and s.celery_broker_url.startswith("redis")
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "DISTILLSCOPE_DATA_DIR=/data" in dockerfile


# The api image is built without the worker extra: check it from the files (no Docker here).
WORKER_ONLY = {"torch", "transformers", "tokenizers", "safetensors"}


def _stages() -> dict[str, dict]:
    """The Dockerfile's stages by name: the stage each builds on and its RUN lines."""
    stages: dict[str, dict] = {}
    current = None
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        words = line.split()
        if words[:1] == ["FROM"]:
            name = words[3] if len(words) >= 4 and words[2].upper() == "AS" else words[1]
            current = stages[name] = {"from": words[1], "runs": []}
        elif words[:1] == ["RUN"]:
            current["runs"].append(line)
    return stages


def _installed(stage: str) -> set[str]:
    """The distributions a stage's `pip install` lines ask for, its parents' included, with the
    project's own dependencies and extras read from pyproject.toml."""
    import re
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def name(req: str) -> str:
        return re.split(r"[\s\[<>=!~;]", req, maxsplit=1)[0].lower()

    stages, wanted = _stages(), set()
    while stage in stages:
        for run in stages[stage]["runs"]:
            if "pip install" not in run:
                continue
            for arg in run.split("pip install", 1)[1].split():
                arg = arg.strip("\"'")
                if arg.startswith("-"):
                    continue
                if arg.startswith("."):  # the project itself, with the extras named
                    extras = re.findall(r"[\w-]+", arg[1:])
                    wanted |= {name(r) for r in project["dependencies"]}
                    for extra in extras:
                        wanted |= {name(r) for r in project["optional-dependencies"][extra]}
                else:
                    wanted.add(name(arg))
        stage = stages[stage]["from"]
    return wanted


def test_the_api_image_does_not_install_torch():
    services = _compose()["services"]
    assert services["api"]["build"]["target"] == "api"
    assert not WORKER_ONLY & _installed("api"), WORKER_ONLY & _installed("api")
    assert list(_stages())[-1] == "api"  # a plain `docker build .` makes the api image
    for name in ("worker", "inspect-worker", "flower"):  # each imports worker.tasks (torch)
        target = services[name]["build"]["target"]
        assert WORKER_ONLY <= _installed(target), (name, target)
    assert "flower" in _installed(services["flower"]["build"]["target"])


def test_torch_is_a_range_in_the_worker_extra_and_make_installs_it():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any(d.startswith("torch") for d in project["dependencies"])
    assert "torch>=2.4" in project["optional-dependencies"]["worker"]
    makefile = (ROOT / "Makefile").read_text()
    for target in (".installed:", ".installed-dev:", ".installed-real:"):
        recipe = makefile.split(target, 1)[1].split("\n\n", 1)[0]
        assert '-e ".[worker' in recipe, target  # make up / install / install-dev / real


def test_the_api_runs_without_the_worker_extra(env):
    """The api image's environment, here: torch and transformers cannot be imported at all,
    and the api still starts, lists the catalog and checks a run and an inspection."""
    import subprocess
    import sys

    code = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"torch", "transformers", "tokenizers", "safetensors"}:
            raise ImportError(f"{name} is not installed in the api image")
sys.meta_path.insert(0, Block())
from fastapi.testclient import TestClient
from backend.main import create_app
with TestClient(create_app()) as c:
    for path in ("/api/health", "/api/models", "/api/datasets", "/api/presets", "/api/runs"):
        assert c.get(path).status_code == 200, path
    run = {"teacher": "demo-teacher", "student": "demo-student-s", "dataset": "demo"}
    r = c.post("/api/runs", json=run)
    assert r.status_code == 201, r.text
    r = c.post("/api/inspect", json={"models": ["nope"], "prompt": "the"})
    assert r.status_code == 422, r.text
print("ok")
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert out.returncode == 0 and out.stdout.split()[-1:] == ["ok"], out.stderr[-3000:]
