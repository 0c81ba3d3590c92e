"""runtime/ and calib/ are what a Jetson app embeds, and ``edgedet check``/``build`` run on the device:
importing them must not pull in torch (the import time is measured in benchmarks/import_time.py)."""

import subprocess
import sys

import pytest

TORCH_FREE = ["edgedet.runtime", "edgedet.runtime.detections", "edgedet.runtime.draw", "edgedet.runtime.detector",
              "edgedet.runtime.onnx_engine", "edgedet.runtime.openvino_engine", "edgedet.runtime.trt_engine",
              "edgedet.runtime.video", "edgedet.runtime.pipeline", "edgedet.runtime.streams",
              "edgedet.runtime.tracker", "edgedet.runtime.bench", "edgedet.runtime.plugins", "edgedet.data.mjpeg",
              "edgedet.runtime.metadata", "edgedet.runtime.preprocess", "edgedet.calib.quantize", "edgedet.calib.sources",
              "edgedet.calib.trt_cache", "edgedet.export.conformance", "edgedet.export.trt_builder",
              "edgedet.data", "edgedet.data.synth", "edgedet.errors", "edgedet.fileio",
              "edgedet.runtime.triton.config", "edgedet.runtime.triton.repository", "edgedet.runtime.triton.client",
              "edgedet.runtime.triton.server", "edgedet.runtime.triton.python_models"]


@pytest.mark.parametrize("module", TORCH_FREE)
def test_module_imports_without_torch(module: str) -> None:
    code = (
        "import sys; import " + module + "\n"
        "bad=[m for m in sys.modules if m.split('.')[0] in ('torch','torchvision')]\n"
        "print(bad[:3]); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"{module} imported torch: {proc.stdout} {proc.stderr}"


def test_runtime_source_has_no_torch_import() -> None:
    from pathlib import Path

    import edgedet.calib
    import edgedet.runtime

    for pkg in (edgedet.runtime, edgedet.calib):
        for f in Path(pkg.__file__).parent.rglob("*.py"):
            text = f.read_text()
            assert "import torch" not in text and "from torch" not in text, f
