"""``edgedet serve export``: a Triton model repository from edgedet artifacts and their sidecars.

For each artifact (a ``.plan`` or an ``.onnx`` with its metadata) it writes:

- ``<name>``: the engine for a native backend — ``tensorrt_plan`` for a plan, ``onnxruntime_onnx`` for an ONNX
  file (with the TensorRT execution accelerator listed for GPU instances) — inputs and outputs the contract;
- ``<name>_cpu`` (ONNX only): the same contract served by Triton's Python backend through
  ``edgedet.runtime.Detector`` (OpenVINO or ONNX Runtime), so the repository serves on machines without a GPU;
- ``<name>_e2e``: encoded JPEG/PNG bytes in, detections in original-image pixels with class names out
  (a Python-backend model on ``edgedet.runtime``: decode, resize, engine, box mapping);

each with its class names as ``labels.txt`` and the sidecar metadata as model parameters, plus a README. The
repository is written into a temporary folder and renamed into place, so a failure leaves nothing half-written.
"""

from __future__ import annotations

import os
import re
import shutil
import sysconfig
from dataclasses import replace
from pathlib import Path

from edgedet.errors import EdgedetError
from edgedet.runtime.detector import ONNX_SUFFIXES, TRT_SUFFIXES
from edgedet.runtime.metadata import read_metadata, require_runtime_keys, sidecar_path
from edgedet.runtime.triton.config import Serving, model_config, to_text
from edgedet.runtime.trt_contract import require_plan_file

MARKER = "README.md"  # what marks a folder as a repository this wrote (and may replace with --force)

MODEL_PY = '''"""Triton Python-backend model written by `edgedet serve export`: {role}."""
import os
import site

# Before OpenCV loads: a small file that decodes to a huge image is refused by the decoder, not after it.
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", "64000000")

# Where edgedet and its dependencies are installed (the Python that wrote this repository);
# EDGEDET_SITE_PACKAGES (folders separated by {sep!r}) overrides it, e.g. inside a Triton container.
for _path in os.environ.get("EDGEDET_SITE_PACKAGES", {site!r}).split({sep!r}):
    if _path and os.path.isdir(_path):
        site.addsitedir(_path)

from edgedet.runtime.triton.python_models import {cls} as TritonPythonModel  # noqa: E402,F401
'''


def model_name(artifact: Path) -> str:
    """``ssdlite_tiny.fp16.onnx`` → ``ssdlite_tiny_fp16``: Triton model names without dots."""
    stem = artifact.name[: -len(artifact.suffix)]
    return re.sub(r"[^A-Za-z0-9_-]", "_", stem)


def _metadata(artifact: Path) -> dict:
    if not artifact.is_file():
        raise EdgedetError(f"engine not found: {artifact}")
    suffix = artifact.suffix.lower()
    if suffix not in ONNX_SUFFIXES | TRT_SUFFIXES:
        raise EdgedetError(f"{artifact.name}: expected an .onnx export or a TensorRT .plan/.engine")
    if suffix in TRT_SUFFIXES:
        require_plan_file(artifact)
    meta = read_metadata(artifact)
    if meta is None:
        raise EdgedetError(f"{artifact.name} has no edgedet metadata (no {sidecar_path(artifact).name}, no ONNX "
                           "metadata_props): serve exports made by edgedet export / edgedet build")
    require_runtime_keys(meta, artifact.name)
    if meta.get("nms", {}).get("flavour") == "efficient" and suffix in ONNX_SUFFIXES:
        raise EdgedetError(f"{artifact.name} uses the TensorRT plugin EfficientNMS_TRT, which ONNX Runtime and "
                           "OpenVINO cannot run; serve its TensorRT plan, or export with --nms onnx")
    return meta


def _write_model(folder: Path, config, labels: list[str], files: dict[str, Path | str]) -> None:
    (folder / "1").mkdir(parents=True)
    (folder / "config.pbtxt").write_text(to_text(config))
    (folder / "labels.txt").write_text("".join(f"{name}\n" for name in labels))
    for name, source in files.items():
        target = folder / "1" / name
        if isinstance(source, Path):
            shutil.copyfile(source, target)
        else:
            target.write_text(source)


def _python_model(role: str, cls: str) -> str:
    return MODEL_PY.format(role=role, cls=cls, site=sysconfig.get_paths()["purelib"], sep=os.pathsep)


def write_repository(artifacts: list[Path], out: Path, *, kind: str = "gpu", instances: int = 1,
                     queue_delay_us: int = 200, batching: bool = True, force: bool = False) -> list[str]:
    """Write the repository to ``out``; returns the model names. ``kind``: where the native models' instances run."""
    if not artifacts:
        raise EdgedetError("give at least one engine: --engine FILE [FILE ...]")
    if out.exists() and not force:
        raise EdgedetError(f"{out} exists; pass --force to overwrite it")
    if out.exists() and not (out / MARKER).is_file():
        raise EdgedetError(f"{out} is not a repository written by edgedet serve export (no {MARKER}); not replacing it")
    metas = [(Path(a), _metadata(Path(a))) for a in artifacts]
    names = [model_name(a) for a, _ in metas]
    every = [f"{n}{tail}" for (a, _), n in zip(metas, names) for tail in ("", "_e2e", *(("_cpu",) if a.suffix.lower() in ONNX_SUFFIXES else ()))]
    if len(set(every)) != len(every):
        raise EdgedetError(f"two engines would give models the same name ({', '.join(sorted(every))}); rename one")
    partial = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    written: list[str] = []
    try:
        for (artifact, meta), name in zip(metas, names):
            written += _write_engine(partial, artifact, meta, name, kind, instances, queue_delay_us, batching)
        (partial / MARKER).write_text(_readme(out, written))
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        if out.exists():
            out.rename(old)  # the old repository stays whole until the new one is in place
        partial.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return written


def _write_engine(repo: Path, artifact: Path, meta: dict, name: str, kind: str, instances: int,
                  queue_delay_us: int, batching: bool) -> list[str]:
    k = int(meta.get("nms", {}).get("max_dets", 100))
    classes = [str(c) for c in meta["classes"]]
    suffix = artifact.suffix.lower()
    native = Serving(kind=kind, instances=instances, queue_delay_us=queue_delay_us, batching=batching)
    on_cpu = replace(native, kind="cpu")
    engine_file = f"engine{suffix}"
    engine_files = {engine_file: artifact, "engine.json": sidecar_path(artifact)} if sidecar_path(artifact).is_file() \
        else {engine_file: artifact}
    common = {"engine_file": engine_file, "max_dets": str(k), "source": artifact.name}
    models = []
    if suffix in TRT_SUFFIXES:
        config = model_config(name, meta, k, native, platform="tensorrt_plan")
        _write_model(repo / name, config, classes, {"model.plan": artifact})
    else:
        precision = {"fp32": "FP32"}.get(meta.get("precision", "fp32"), "FP16")
        accel = [{"name": "tensorrt", "parameters": {"precision_mode": precision, "max_workspace_size_bytes": str(1 << 30)}}]
        config = model_config(name, meta, k, native, platform="onnxruntime_onnx",
                              accelerators=accel if kind == "gpu" else None)
        _write_model(repo / name, config, classes, {"model.onnx": artifact})
        cpu = model_config(f"{name}_cpu", meta, k, on_cpu, backend="python",
                           parameters={**common, "backend": "auto", "device": "cpu"})
        _write_model(repo / f"{name}_cpu", cpu, classes,
                     {**engine_files, "model.py": _python_model("the engine contract on the CPU", "ContractModel")})
        models.append(f"{name}_cpu")
    e2e_serving = native if suffix in TRT_SUFFIXES else on_cpu  # an ONNX export's e2e model runs it on the CPU
    e2e = model_config(f"{name}_e2e", meta, k, e2e_serving, backend="python", end_to_end=True,
                       parameters={**common, **({"backend": "tensorrt"} if suffix in TRT_SUFFIXES else {"backend": "auto", "device": "cpu"})})
    _write_model(repo / f"{name}_e2e", e2e, classes,
                 {**engine_files, "model.py": _python_model("encoded images in, detections out", "EndToEndModel")})
    return [name, *models, f"{name}_e2e"]


def _readme(out: Path, models: list[str]) -> str:
    listing = "\n".join(f"- `{m}`" for m in models)
    return f"""# Triton model repository written by `edgedet serve export`

Models:
{listing}

`<name>` runs the engine on Triton's native backend (`tensorrt_plan` or `onnxruntime_onnx`), inputs and outputs
the edgedet contract (uint8 `images` NHWC resized to the network size; `num_dets`, `boxes`, `scores`, `labels`).
`<name>_cpu` serves the same contract through Triton's Python backend and `edgedet.runtime` (OpenVINO or ONNX
Runtime), for machines without a GPU. `<name>_e2e` takes one encoded JPEG/PNG image per request (`image`, UINT8
[1, n]) and returns `num_dets`, `boxes` in original-image pixels, `scores` and `labels`. Class names are in each
model's `labels.txt`; the export's metadata is the model parameter `edgedet_metadata`.

Start a server on this machine (no GPU needed for the `_cpu` and `_e2e` models of an ONNX export):

    edgedet serve start --repo {out}                       # the tritonserver of the nvidia-pytriton wheel
    edgedet predict --server http://127.0.0.1:8000 --served-model {models[-1]} --images IMAGES --json preds.json

or with NVIDIA's container (GPU models; edgedet installed in it for the Python-backend models):

    docker run --gpus all --rm -p 8000:8000 -p 8001:8001 -v {out}:/models nvcr.io/nvidia/tritonserver:<yy.mm>-py3 \\
        tritonserver --model-repository /models
"""
