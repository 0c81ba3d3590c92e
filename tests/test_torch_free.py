"""runtime/ and calib/ are what a Jetson app embeds: importing them must not pull in torch."""

import subprocess
import sys

import pytest

TORCH_FREE = ["edgedet.runtime", "edgedet.runtime.detections", "edgedet.runtime.draw", "edgedet.runtime.detector",
              "edgedet.runtime.onnx_engine", "edgedet.runtime.video", "edgedet.runtime.pipeline", "edgedet.runtime.bench",
              "edgedet.runtime.plugins", "edgedet.runtime.metadata", "edgedet.runtime.preprocess", "edgedet.calib",
              "edgedet.data", "edgedet.data.synth", "edgedet.errors", "edgedet.fileio"]


@pytest.mark.parametrize("module", TORCH_FREE)
def test_module_imports_without_torch(module: str) -> None:
    code = (
        "import sys, time; t=time.perf_counter(); import " + module + "; dt=time.perf_counter()-t\n"
        "bad=[m for m in sys.modules if m.split('.')[0] in ('torch','torchvision')]\n"
        "print(dt); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"{module} imported torch: {proc.stderr}"


def test_runtime_source_has_no_torch_import() -> None:
    from pathlib import Path

    import edgedet.calib
    import edgedet.runtime

    for pkg in (edgedet.runtime, edgedet.calib):
        for f in Path(pkg.__file__).parent.rglob("*.py"):
            text = f.read_text()
            assert "import torch" not in text and "from torch" not in text, f


def test_runtime_imports_fast() -> None:
    code = "import time; t=time.perf_counter(); from edgedet.runtime import Detector; print(time.perf_counter()-t)"
    best = min(float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout)
               for _ in range(3))
    assert best <= 0.5, f"from edgedet.runtime import Detector took {best:.2f}s"
