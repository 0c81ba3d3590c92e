"""The runtime-only install a device that only runs engines uses: a fresh venv, ``pip install ".[runtime,serve]"``
from the clone, no torch. Its verbs run on a real export and give what the full install gives; a verb that needs
PyTorch says in one line which install adds it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import assert_one_line_error, run_edgedet

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # a fresh venv and a pip install: about two minutes
OFFLINE = ("Failed to establish a new connection", "Temporary failure in name resolution", "Network is unreachable")


@pytest.fixture(scope="module")
def runtime_venv(tmp_path_factory) -> Path:
    venv = tmp_path_factory.mktemp("runtime-venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    proc = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", f"{REPO}[runtime,serve]",
                           "-c", str(REPO / "constraints.txt")], capture_output=True, text=True, timeout=1200)
    if proc.returncode != 0 and any(m in proc.stderr for m in OFFLINE) and not os.environ.get("CI"):
        pytest.skip("the runtime install needs PyPI")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return venv


def _edgedet(venv: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run([str(venv / "bin" / "edgedet"), *args], capture_output=True, text=True, timeout=600,
                          env=env, cwd=venv.parent)


def test_runtime_install_has_no_torch(runtime_venv):
    code = "import importlib.util as u; print([m for m in ('torch', 'torchvision', 'onnxruntime') if u.find_spec(m)])"
    proc = subprocess.run([str(runtime_venv / "bin" / "python"), "-c", code], capture_output=True, text=True,
                          cwd=runtime_venv.parent)
    assert proc.returncode == 0 and proc.stdout.strip() == "['onnxruntime']", (proc.stdout, proc.stderr)


def test_runtime_verbs_on_a_real_export(runtime_venv, fixture_exports, synth, tmp_path):
    engine = str(fixture_exports["fp32"])
    assert _edgedet(runtime_venv, "doctor").returncode == 0
    check = _edgedet(runtime_venv, "check", "--engine", engine, "--json")
    assert check.returncode == 0 and json.loads(check.stdout), check.stderr
    bench = _edgedet(runtime_venv, "bench", "--engine", engine, "--iters", "3", "--warmup", "1", "--json")
    assert bench.returncode == 0 and json.loads(bench.stdout)["throughput_ips"] > 0, bench.stderr

    images = ["--images", str(synth.images_dir / "val_0032*.jpg")]
    here, there = tmp_path / "full.json", tmp_path / "runtime.json"
    assert run_edgedet("predict", "--engine", engine, *images, "--json", str(here)).returncode == 0
    proc = _edgedet(runtime_venv, "predict", "--engine", engine, *images, "--json", str(there))
    assert proc.returncode == 0, proc.stderr
    found = json.loads(there.read_text())
    assert found and found == json.loads(here.read_text())  # the same detections as the full install

    lines = tmp_path / "run.jsonl"
    proc = _edgedet(runtime_venv, "run", "--engine", engine, "--video", str(synth.video), "--track", "--headless",
                    "--jsonl", str(lines))
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(x)["frame"] for x in lines.read_text().splitlines()] == list(range(120))

    proc = _edgedet(runtime_venv, "serve", "export", "--engine", engine, "-o", str(tmp_path / "repo"))
    assert proc.returncode == 0, proc.stderr
    assert list((tmp_path / "repo").rglob("config.pbtxt"))


def test_a_verb_that_needs_torch_names_the_install(runtime_venv, synth):
    for args in (["train", "--model", "ssdlite_tiny", "--data", str(synth.train_json), "--epochs", "1"],
                 ["export", "--model", "ssdlite_tiny", "--weights", "none"]):
        assert_one_line_error(_edgedet(runtime_venv, *args), "needs PyTorch", 'pip install -e ".[torch]"')
