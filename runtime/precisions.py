"""One row per export precision: the file an export of it is written to, and how close to the PyTorch reference
it must stay — ``export --verify``'s box agreement and ``verify``'s AP tolerance read the same row.

The tolerances are one-sided AP points as MMDeploy's regression tests gate, and a share of the reference's boxes
matched (same label, IoU ≥ 0.9). An engine whose precision is none of these (a TensorRT build that mixes them) is
judged by the most lenient row, INT8's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Precision:
    name: str
    suffix: str  # what the file name carries before ".onnx": model.onnx, model.fp16.onnx, model.int8.onnx
    box_agreement: float  # export --verify: minimum share of the reference's boxes the engine matches
    borderline: float  # an unmatched box within this of the score threshold has its twin just across it
    ap_tolerance: float  # verify: the AP points an engine may lose against the reference

    def onnx_path(self, folder: Path, stem: str) -> Path:
        return Path(folder) / f"{stem}{self.suffix}.onnx"


PRECISIONS: dict[str, Precision] = {
    "fp32": Precision("fp32", "", box_agreement=0.99, borderline=1e-3, ap_tolerance=0.1),
    "fp16": Precision("fp16", ".fp16", box_agreement=0.97, borderline=1e-2, ap_tolerance=0.3),
    "int8": Precision("int8", ".int8", box_agreement=0.90, borderline=5e-2, ap_tolerance=1.0),
}


def precision(name: str | None) -> Precision:
    """The row of ``name``; any other precision is judged as INT8, the most lenient."""
    return PRECISIONS.get(name or "", PRECISIONS["int8"])


def fp32_twin(path: str | Path) -> Path:
    """The FP32 export written beside a ``.fp16.onnx`` or ``.int8.onnx`` one (``path`` itself if it is FP32)."""
    path = Path(path)
    for p in PRECISIONS.values():
        if p.suffix and path.name.endswith(f"{p.suffix}.onnx"):
            return path.with_name(path.name[: -len(f"{p.suffix}.onnx")] + ".onnx")
    return path
