"""DeepStream files for an edgedet export: an ``nvinfer`` config, its label file and a ``deepstream-app`` config.

What nvinfer needs, and why each key is what it is (nvinfer's own sources: ``gstnvinfer_property_parser.cpp``
reads the keys, ``nvdsinfer_context_impl.cpp`` preprocesses and parses, ``gstnvinfer.cpp`` scales the frame and
maps boxes back):

- The input: nvinfer's preprocessor writes ``net-scale-factor × (pixel − offsets)`` as float32 (or half) NCHW
  into the input binding; ``NvDsInferDataType`` has no UINT8, so only a ``--input-format float-nchw`` export can
  be fed. With ``net-scale-factor=1`` and zero offsets it gets RGB in 0..255, and the graph normalises per
  channel itself (nvinfer has a single scale factor). ``infer-dims`` is ``3;H;W``.
- The resize (``gstnvinfer.cpp``, ``get_converted_buffer``): ``maintain-aspect-ratio=1`` with
  ``symmetric-padding=0`` puts the scaled frame at the top-left, as edgedet's letterbox does, with the scaled
  side truncated (edgedet rounds); nvinfer clears the rest to black (``cudaMemset2DAsync(.., 0, ..)``), where
  edgedet pads with the normalisation mean. nvinfer's default interpolation is nearest; ``scaling-filter=1``
  asks for bilinear, as edgedet resizes. What the padding colour does to detections is measured in the tests
  (test_cpp_runtime.py) and written into the config as a comment.
- After the parser (``nvdsinfer_context_impl_output_parsing.cpp``, cluster-mode 4): objects of a class id
  ``>= num-detected-classes`` or below the class's ``pre-cluster-threshold`` are dropped (its default, 0.2, would
  drop detections the engine keeps, so it is the export's own score threshold). Boxes are mapped back to the
  frame (``gstnvinfer_meta_utils.cpp``); with ``crop-objects-to-roi-boundary=0`` (the default) a box whose bottom
  reaches past the frame is *dropped*, so it is 1 here (clipped instead, as edgedet clips).
- nvinfer builds an ONNX with a dynamic batch dimension whatever the file says (``nvdsinfer_model_builder.cpp``
  sets ``d[0] = -1``), so an ONNX to build there is best a ``--dynamic-batch`` export; a fixed-batch export runs
  as a plan built by ``edgedet build`` (``model-engine-file``).
- The label file has one class per line and skips empty lines, so class names must be non-empty single lines
  without ``;`` (nvinfer splits on it).
- The outputs: NMS is inside the graph (``cluster-mode=4``, no clustering), and ``libnvdsinfer_edgedet.so``
  (built from ``runtime/cpp``) exports ``NvDsInferParseEdgedet``, which reads ``num_dets``, ``boxes``,
  ``scores`` and ``labels`` by name. ``pre-cluster-threshold`` is the export's own score threshold: nvinfer's
  default (0.2) would drop detections the engine keeps.
- Paths are absolute: nvinfer resolves a relative path against the config file's folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgedet.errors import EdgedetError
from edgedet.fileio import atomic_write_text
from edgedet.runtime.input_format import FLOAT_NCHW, format_of
from edgedet.runtime.detector import ONNX_SUFFIXES, TRT_SUFFIXES
from edgedet.runtime.metadata import max_batch, read_metadata, require_runtime_keys
from edgedet.runtime.trt_contract import require_plan_file

PARSER_FUNCTION = "NvDsInferParseEdgedet"
PARSER_LIBRARY = "libnvdsinfer_edgedet.so"
#: nvinfer's network-mode values (NvDsInferNetworkMode).
NETWORK_MODE = {"fp32": 0, "int8": 1, "fp16": 2}
#: nvinfer's black letterbox padding against edgedet's mean colour: the share of the edgedet runtime's boxes (same
#: class, IoU >= 0.5) that nvinfer emulated from its sources keeps, on the Faster R-CNN model of the tests (not
#: trained: its scores are spread on purpose, which makes it more sensitive than a trained model). Measured 0.41
#: on 210 boxes; tests/test_cpp_runtime.py asserts at least this floor, and 1.0 with edgedet's own padding.
LETTERBOX_AGREEMENT = 0.30
PADDING_NOTE = ("Letterbox: nvinfer pads with black, edgedet with the normalisation mean, which the model was trained "
                "on. Measured with nvinfer emulated from its sources on edgedet's (untrained) Faster R-CNN test model, "
                "41% of the edgedet runtime's boxes were kept (100% with edgedet's padding): expect detections "
                "to differ, and check on your data before relying on it.")
CONFIG, LABELS, APP = "config_infer_primary_edgedet.txt", "labels.txt", "deepstream_app_config.txt"


@dataclass(frozen=True)
class DeepStreamFiles:
    config: Path
    labels: Path
    app: Path


def _load(engine: Path) -> dict:
    if engine.suffix.lower() not in ONNX_SUFFIXES | TRT_SUFFIXES:
        raise EdgedetError(f"{engine.name}: DeepStream's nvinfer runs an .onnx export (it builds the engine) or a "
                           "TensorRT .plan/.engine built from one")
    if not engine.is_file():
        raise EdgedetError(f"engine not found: {engine}")
    if engine.suffix.lower() in TRT_SUFFIXES:
        require_plan_file(engine)
    meta = read_metadata(engine)
    if meta is None:
        raise EdgedetError(f"{engine.name} has no edgedet metadata (no sidecar JSON): nvinfer's settings come from it")
    meta = require_runtime_keys(meta, engine.name)
    bad = [c for c in map(str, meta["classes"]) if not c.strip() or ";" in c or "\n" in c or "\r" in c]
    if bad:
        raise EdgedetError(f"{engine.name}: class name {bad[0]!r} cannot be a line of nvinfer's label file (empty, or "
                           "with ';' or a line break, which nvinfer splits on); rename the class and re-export")
    if format_of(meta) != FLOAT_NCHW:
        raise EdgedetError(f"{engine.name} takes uint8 NHWC input, which nvinfer cannot write (it feeds float32 "
                           "NCHW): re-export with --input-format float-nchw")
    return meta


def nvinfer_config(engine: Path, meta: dict, labels: Path, parser_lib: Path, padding_note: str = "") -> str:
    """The ``[property]`` and ``[class-attrs-all]`` groups nvinfer reads, for ``engine`` (absolute paths)."""
    h, w = meta["input"]["size"]
    letterbox = meta["input"].get("resize") == "letterbox"
    precision = meta.get("precision", "fp32")
    nms = meta.get("nms", {})
    onnx_file = engine.suffix.lower() in ONNX_SUFFIXES
    source = f"onnx-file={engine}" if onnx_file else f"model-engine-file={engine}"
    notes = [padding_note] if padding_note and letterbox else []
    if onnx_file and not meta.get("batch", {}).get("dynamic"):
        notes.append("nvinfer builds ONNX with a dynamic batch; this fixed-batch export is safer as a plan "
                     "(edgedet build) in model-engine-file, or re-exported with --dynamic-batch N.")
    pad = "".join(f"\n# {n}" for n in notes)
    return f"""# DeepStream nvinfer config for {engine.name}, written by `edgedet serve deepstream`.
# Input: float32 NCHW RGB 0..255 (the export normalises per channel inside); NMS in the graph, parsed by
# {PARSER_FUNCTION} from {PARSER_LIBRARY} (build it from runtime/cpp with -DEDGEDET_DEEPSTREAM_INCLUDE=...).{pad}
[property]
gpu-id=0
gie-unique-id=1
process-mode=1
network-type=0
{source}
labelfile-path={labels}
batch-size={max_batch(meta)}
network-mode={NETWORK_MODE.get(precision, 0)}
infer-dims=3;{h};{w}
network-input-order=0
model-color-format=0
net-scale-factor=1.0
offsets=0;0;0
maintain-aspect-ratio={1 if letterbox else 0}
symmetric-padding=0
scaling-filter=1
num-detected-classes={len(meta["classes"])}
cluster-mode=4
crop-objects-to-roi-boundary=1
output-blob-names=num_dets;boxes;scores;labels
parse-bbox-func-name={PARSER_FUNCTION}
custom-lib-path={parser_lib}

[class-attrs-all]
pre-cluster-threshold={float(nms.get("score_thresh", 0.25))}
"""


def app_config(infer_config: Path, video: str, output: Path, batch: int, size: tuple[int, int]) -> str:
    """A ``deepstream-app`` pipeline: file source → nvstreammux → nvinfer → nvdsosd → MP4 file sink."""
    h, w = size
    uri = video if "://" in video else Path(video).resolve().as_uri()
    return f"""# deepstream-app -c {APP}: {uri} -> nvinfer ({infer_config.name}) -> on-screen boxes -> {output}
[application]
enable-perf-measurement=1
perf-measurement-interval-sec=5

[source0]
enable=1
type=3
uri={uri}
num-sources=1
gpu-id=0

[streammux]
gpu-id=0
batch-size={batch}
batched-push-timeout=40000
width={max(w, 1280)}
height={max(h, 720)}
live-source=0

[primary-gie]
enable=1
gpu-id=0
gie-unique-id=1
config-file={infer_config}

[osd]
enable=1
gpu-id=0
border-width=2
text-size=12
display-text=1

[sink0]
enable=1
type=3
container=1
codec=1
enc-type=0
bitrate=4000000
sync=0
output-file={output}
"""


def write_deepstream(engine: str | Path, out: str | Path, *, parser_lib: str | Path | None = None,
                     video: str | None = None, padding_note: str = PADDING_NOTE, force: bool = False) -> DeepStreamFiles:
    """Write the nvinfer config, labels and a deepstream-app config for ``engine`` into ``out``."""
    engine, out = Path(engine).resolve(), Path(out).resolve()
    meta = _load(engine)
    lib = Path(parser_lib).resolve() if parser_lib else out / PARSER_LIBRARY
    files = DeepStreamFiles(out / CONFIG, out / LABELS, out / APP)
    existing = [p for p in (files.config, files.labels, files.app) if p.exists()]
    if existing and not force:
        raise EdgedetError(f"{existing[0]} exists; pass --force to overwrite it")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(files.labels, "".join(f"{c}\n" for c in meta["classes"]))
    atomic_write_text(files.config, nvinfer_config(engine, meta, files.labels, lib, padding_note))
    atomic_write_text(files.app, app_config(files.config, video or "/path/to/video.mp4", out / "out.mp4",
                                            max_batch(meta), tuple(meta["input"]["size"])))
    return files
