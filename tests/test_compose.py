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
