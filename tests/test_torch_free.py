"""runtime/ and calib/ are what a Jetson app embeds: importing them must not pull in torch."""

import subprocess
import sys

import pytest

TORCH_FREE = ["edgedet.runtime", "edgedet.runtime.detections", "edgedet.runtime.draw", "edgedet.calib",
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
