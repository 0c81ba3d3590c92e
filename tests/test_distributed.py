"""``torchrun --nproc_per_node=2 -m edgedet train`` on the CPU (gloo): one run folder, one report, a checkpoint
that loads and resumes with its own recipe."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import run_edgedet

pytestmark = pytest.mark.slow  # two training processes


def test_two_processes_write_one_run_and_report_once(synth, tmp_path):
    from edgedet.checkpoint import load_checkpoint

    runs = tmp_path / "runs"
    (runs / "exp").mkdir(parents=True)  # an earlier run: the new one must be exp2, chosen once for both ranks
    data = ["--data", str(synth.train_json), "--images", str(synth.images_dir)]
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "edgedet", "train",
         "--model", "ssdlite_tiny", "--preset", "tiny", *data, "--val-data", str(synth.val_json), "--epochs", "1",
         "--device", "cpu", "--optimizer", "adamw", "--out", str(runs / "exp")],
        capture_output=True, text=True, timeout=900, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in runs.iterdir()) == ["exp", "exp2"] and not list((runs / "exp").iterdir())
    assert proc.stdout.count("best: ") == 1 and proc.stderr.count("train: done") == 1, (proc.stdout, proc.stderr[-500:])
    last = runs / "exp2" / "last.pt"
    ckpt = load_checkpoint(last)
    assert ckpt["epoch"] == 1 and ckpt["config"]["optimizer"] == "adamw" and ckpt["config"]["val_data"]
    recipe = ckpt["config"]

    # Resume as the README writes it: the checkpoint's recipe (AdamW, its val split) continues.
    again = run_edgedet("train", "--resume", str(last), *data, "--epochs", "2", "--device", "cpu")
    assert again.returncode == 0, again.stderr[-2000:]
    ckpt = load_checkpoint(last)
    assert ckpt["epoch"] == 2 and {**ckpt["config"], "epochs": 1} == recipe  # only --epochs changed
    assert [("val" in h) for h in ckpt["history"]] == [True, True], "the resumed epoch is evaluated too"
