"""What edgedet finds installed. Every probe is guarded: a broken package is reported, never raised."""

from __future__ import annotations

import glob
import platform
from pathlib import Path
from typing import Any


def _torch() -> dict[str, Any]:
    try:
        import torch
    except Exception as e:  # noqa: BLE001 - reporting any import failure is the point
        return {"torch": f"not installed ({type(e).__name__})"}
    out: dict[str, Any] = {"torch": torch.__version__}
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        out["CUDA (torch)"] = f"{torch.version.cuda}: {', '.join(names)}"
    else:
        out["CUDA (torch)"] = f"not available (built for CUDA {torch.version.cuda})" if torch.version.cuda else "CPU-only build"
    try:
        import torchvision

        from torchvision.ops import nms  # the C++ ops fail to load with a mismatched torch

        nms(torch.zeros((1, 4)), torch.zeros(1), 0.5)
        out["torchvision"] = torchvision.__version__
    except Exception as e:  # noqa: BLE001
        out["torchvision"] = f"unusable: {str(e).splitlines()[0][:120] if str(e) else type(e).__name__}"
    return out


def _version(module: str) -> str:
    try:
        mod = __import__(module)
        return getattr(mod, "__version__", "installed")
    except Exception as e:  # noqa: BLE001
        return f"not installed ({type(e).__name__})"


def _onnxruntime() -> dict[str, Any]:
    try:
        import onnxruntime as ort
    except Exception as e:  # noqa: BLE001
        return {"onnxruntime": f"not installed ({type(e).__name__})"}
    from edgedet.runtime.onnx_engine import int8_products_saturate

    mode = ("no VNNI: 8-bit weights would saturate (exports use 7; ONNX Runtime runs 8-bit ones in exact U8U8)"
            if int8_products_saturate() else "VNNI/AMX: no saturation")
    return {"onnxruntime": ort.__version__, "ORT providers": ort.get_available_providers(), "CPU INT8": mode}


def _openvino() -> dict[str, Any]:
    try:
        import openvino as ov

        return {"openvino": f"{ov.__version__.split('-')[0]}: devices {', '.join(ov.Core().available_devices)}"}
    except Exception as e:  # noqa: BLE001
        return {"openvino": f"not installed ({type(e).__name__})"}


def _tensorrt() -> dict[str, Any]:
    version = _version("tensorrt")
    out = {"tensorrt": version}
    if not version.startswith("not"):
        out.update(tensorrt_summary(version, jetson=Path("/etc/nv_tegra_release").exists()))
    try:
        from cuda import bindings  # noqa: F401

        out["CUDA host API"] = "cuda-python (cuda.bindings)"
    except Exception:  # noqa: BLE001
        out["CUDA host API"] = "pycuda" if not _version("pycuda").startswith("not") else "none (install cuda-python)"
    return out


def tensorrt_summary(version: str, *, jetson: bool) -> dict[str, str]:
    """Which build path and DLA support this TensorRT version gives (what `edgedet build` will do)."""
    from edgedet.errors import EdgedetError
    from edgedet.export.conformance import target_for_tensorrt
    from edgedet.export.trt_builder import dla_support, tensorrt_features

    try:
        f = tensorrt_features(version)
    except EdgedetError as e:
        return {"TensorRT build": str(e)}
    typing = ("strongly typed (precision from the ONNX: .fp16.onnx / Q-DQ .int8.onnx)" if f.strongly_typed
              else "weakly typed (--fp16/--int8 builder flags, INT8 calibrators)")
    nms = "--nms onnx (EfficientNMS_TRT deprecated here)" if f.efficient_nms_deprecated else "--nms onnx or efficient"
    dla = dla_support(version) + ("" if jetson else "; this is not a Jetson, so no DLA here")
    return {"TensorRT build": f"{typing}; check target {target_for_tensorrt(version)}; {nms}", "DLA": dla}


def _opencv() -> dict[str, Any]:
    try:
        import cv2
    except Exception as e:  # noqa: BLE001
        return {"opencv": f"not installed ({type(e).__name__})"}
    from edgedet.runtime.video import opencv_build_field, opencv_gui_backend

    gui = opencv_gui_backend()
    return {"opencv": cv2.__version__,
            "OpenCV GUI": gui or "none (headless: `edgedet run` cannot open a window; pip install opencv-python)",
            "OpenCV GStreamer": opencv_build_field("GStreamer") or "unknown"}


def _cameras() -> dict[str, Any]:
    cams = sorted(glob.glob("/dev/video*"))
    return {"cameras": [f"cam{c[len('/dev/video'):]} ({c})" for c in cams]}


def _platform() -> dict[str, Any]:
    jetson = Path("/etc/nv_tegra_release")
    plat = f"{platform.system()} {platform.machine()}, Python {platform.python_version()}"
    if jetson.exists():
        plat += f"; Jetson: {jetson.read_text().splitlines()[0][:80]}"
    return {"platform": plat}


def collect() -> dict[str, Any]:
    from edgedet import __version__

    report: dict[str, Any] = {"edgedet": __version__}
    for probe in (_platform, _torch, _onnxruntime, _openvino, _tensorrt, _opencv, _cameras):
        report.update(probe())
    report["onnx"] = _version("onnx")
    return report
