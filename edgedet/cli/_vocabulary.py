"""edgedet's one CLI vocabulary: every flag that more than one verb takes is defined here, once.

A verb asks for a flag by name (``add(p, "score-thresh", default=0.4)``); it may choose the default, whether
the flag is required, and a detail appended to the shared help, but never its meaning, type or spelling.
Old spellings stay for one release as deprecated aliases that warn and fill the same destination.
``python -m edgedet.cli._vocabulary`` prints the vocabulary table of docs/cli.md from this module, and a test
keeps docs/cli.md equal to it, and another that no verb re-declares a shared flag by hand.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any, Callable

# --------------------------------------------------------------------------------------------- value types


def unit_interval(text: str) -> float:
    """argparse type: a score threshold in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], not {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], not {text}")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, not {text!r}") from None


def positive_int(text: str) -> int:
    """argparse type: a count of at least 1 (batch sizes, iterations, images)."""
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {text}")
    return value


def port(text: str) -> int:
    """argparse type: a TCP port, 1..65535 (70000 "started" a server on 70000 mod 65536)."""
    value = _integer(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a TCP port in 1..65535, not {text}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: 0 or more (worker processes, warm-up calls)."""
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def device_spec(text: str) -> str:
    """argparse type: ``cpu``, ``cuda`` or ``cuda:N`` — where the PyTorch model or the engine runs.

    A bare ``N`` (build's old spelling) still means ``cuda:N``."""
    value = text.strip().lower()
    if value.isdigit():
        return f"cuda:{int(value)}"
    if value in ("cpu", "cuda") or (value.startswith("cuda:") and value[5:].isdigit()):
        return value
    raise argparse.ArgumentTypeError(f"must be cpu, cuda or cuda:N, not {text!r}")


def cuda_index(device: str | None) -> int:
    """The CUDA ordinal of a :func:`device_spec` value (0 for ``cuda`` or none given)."""
    if device and device.startswith("cuda:"):
        return int(device[5:])
    return 0


# ------------------------------------------------------------------------------------------------ registry


@dataclass(frozen=True)
class Flag:
    """One flag of the vocabulary: its spellings, its argparse keywords and the one meaning it has."""

    names: tuple[str, ...]
    meaning: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.names[-1].lstrip("-")


def _flags(*flags: Flag) -> dict[str, Flag]:
    return {f.key: f for f in flags}


FLAGS: dict[str, Flag] = _flags(
    # what is run
    Flag(("--model",), "zoo name (see `edgedet models`); optional when --weights is an edgedet checkpoint"),
    Flag(("--weights",), "edgedet checkpoint FILE, default/ENUM (torchvision, needs network) or none (random "
                         "weights, said explicitly)"),
    Flag(("--engine",), "an exported artifact: .onnx (ONNX Runtime, OpenVINO) or TensorRT .plan/.engine",
         {"metavar": "FILE"}),
    Flag(("--backend",), "auto: TensorRT for .plan/.engine; ONNX Runtime for .onnx, except INT8 graphs without a "
                         "GPU: OpenVINO where installed (measured 2.5-3.9x faster); or onnxruntime, openvino, "
                         "tensorrt", {"default": "auto"}),
    Flag(("--device",), "where it runs: cpu, cuda or cuda:N (the PyTorch model, the TensorRT GPU, the build GPU; "
                        "default: CUDA when available)", {"type": device_spec, "metavar": "DEV"}),
    Flag(("--threads",), "CPU runtime intra-op threads (ONNX Runtime, OpenVINO; default: the runtime's)",
         {"type": positive_int, "metavar": "N"}),
    # what is read
    Flag(("--server",), "a Triton server with an `edgedet serve export` repository: http://HOST:PORT or "
                        "grpc://HOST:PORT (instead of --engine)", {"metavar": "URL"}),
    Flag(("--served-model",), "the model to call on --server: the <name>_e2e model `edgedet serve export` wrote",
         {"metavar": "NAME"}),
    Flag(("--data",), "annotations: COCO JSON or VOC folder",
         {"metavar": "ANN"}),
    Flag(("--images",), "images: a file, folder or glob (with --data: the folder its file names are relative to)",
         {"metavar": "SRC"}),
    Flag(("--video",), "a stream: camN, csiN, a video file, rtsp://… or a GStreamer pipeline", {"metavar": "SRC"}),
    Flag(("--max-images",), "use the first N images only (default: all)", {"type": positive_int, "metavar": "N"}),
    Flag(("--bad-images",), "unreadable images: skip with a warning naming each, or fail",
         {"choices": ["skip", "fail"], "default": "skip"}),
    Flag(("--count",), "how many images to make", {"type": positive_int, "metavar": "N"}),
    Flag(("--epochs",), "training epochs", {"type": positive_int, "metavar": "N"}),
    Flag(("--seed",), "random seed", {"type": int, "metavar": "N"}),
    # what the graph keeps
    Flag(("--score-thresh",), "minimum detection score kept, in [0, 1]", {"type": unit_interval, "metavar": "T"}),
    Flag(("--iou-thresh",), "NMS IoU threshold, in [0, 1]", {"type": unit_interval, "metavar": "T"}),
    Flag(("--max-dets",), "detections per image, the outputs' K", {"type": positive_int, "default": 100,
                                                                   "metavar": "K"}),
    Flag(("--max-candidates",), "candidates kept before NMS (<= 3840)", {"type": positive_int, "default": 1000,
                                                                         "metavar": "N"}),
    Flag(("--rpn-score-thresh",), "Faster R-CNN: mask RPN proposals scoring below this, in [0, 1]",
         {"type": unit_interval, "metavar": "T"}),
    Flag(("--rpn-post-nms-top-n",), "Faster R-CNN: proposals per image the box head runs on (default: the model's); "
                                    "the engine's speed knob", {"type": positive_int, "metavar": "P"}),
    Flag(("--imgsz",), "network input: one size (square) or H W (default: the model's)",
         {"type": positive_int, "nargs": "+", "metavar": "N"}),
    Flag(("--nms",), "onnx: NonMaxSuppression, TensorRT's native NMS layer on every TensorRT version, ONNX Runtime "
                     "and OpenVINO; efficient: the EfficientNMS_TRT plugin, TensorRT only, deprecated since TensorRT "
                     "10.12 (kept for 10.x below 10.12, e.g. JetPack 6), score threshold >= 0.007",
         {"choices": ["onnx", "efficient"], "default": "onnx"}),
    Flag(("--nms-mode",), "how NMS ranks and scores candidates: standard (by class score); iou or score_iou: "
                          "IoU-Net's IoU-guided NMS, ranked by predicted IoU or by score × IoU, each kept box scored "
                          "with the best class score of the boxes it suppresses (Faster R-CNN with an IoU head; box "
                          "refinement is PyTorch-only and never exported)",
         {"choices": ["standard", "iou", "score_iou"], "default": "standard"}),
    Flag(("--fp16",), "FP16: the .fp16.onnx twin (FP16 compute, FP32 I/O and NMS) or FP16 kernels in a build",
         {"action": "store_true"}),
    Flag(("--int8",), "INT8: the .int8.onnx Q/DQ twin calibrated on --calib-images, or an INT8 build",
         {"action": "store_true"}),
    Flag(("--batch",), "images per call", {"type": positive_int, "metavar": "N"}),
    Flag(("--input-format",), "the graph's input: uint8-nhwc (uint8 [B, H, W, 3], what every edgedet runtime feeds "
                              "cheapest) or float-nchw (float32 [B, 3, H, W] RGB in 0..255, what DeepStream's nvinfer "
                              "writes); both normalise inside the graph and detect the same",
         {"choices": ["uint8-nhwc", "float-nchw"], "default": "uint8-nhwc"}),
    # calibration
    Flag(("--calib-images",), "calibration images: an image folder, a COCO JSON or a video", {"metavar": "SRC"}),
    Flag(("--calib-count",), "calibration images used", {"type": positive_int, "default": 256, "metavar": "N"}),
    Flag(("--calib-method",), "how activation ranges are chosen from the calibration images",
         {"choices": ["entropy", "minmax", "percentile"]}),
    # what is written
    Flag(("-o", "--out"), "output folder (run folders are numbered when they exist)", {"metavar": "DIR"}),
    Flag(("--json",), "write the result as JSON to FILE (to stdout when FILE is omitted)",
         {"nargs": "?", "const": "-", "metavar": "FILE"}),
    Flag(("--force",), "overwrite existing output files", {"action": "store_true"}),
    Flag(("--no-check",), "skip `edgedet check` (TensorRT's ONNX parser rules) before writing a graph or a plan",
         {"action": "store_true"}),
    Flag(("--warmup",), "untimed runs before timing", {"type": non_negative_int, "metavar": "N"}),
    Flag(("-v", "--verbose"), "show debug messages: TensorRT's log, calibration and per-step progress",
         {"action": "store_true"}),
)

# Each verb's shared flags, in the order its --help lists them. The table in docs/cli.md is built from this.
_ALLOWED = {"default", "required", "choices", "type", "metavar", "dest", "nargs", "action"}


class _DeprecatedAlias(argparse.Action):
    """An old spelling: warns once and stores into the new flag's destination."""

    def __init__(self, option_strings, dest, *, new: str, convert: Callable | None = None, store_true=False, **kw):
        self.new, self.convert, self.store_true = new, convert, store_true
        super().__init__(option_strings, dest, nargs=0 if store_true else kw.pop("nargs", None), **kw)

    def __call__(self, parser, namespace, values, option_string=None):
        from edgedet import log

        log.warn(f"{option_string} is deprecated and will be removed in the next release; use {self.new}", once=True)
        setattr(namespace, self.dest, True if self.store_true else values)


def add(p: argparse.ArgumentParser | argparse._ArgumentGroup, key: str, *, detail: str = "",
        deprecated: tuple[str, ...] = (), **overrides: Any) -> argparse.Action:
    """Add vocabulary flag ``key`` to a verb's parser; ``detail`` is appended to the shared meaning and
    ``deprecated`` lists this verb's old spellings of it (accepted with a warning for one release)."""
    flag = FLAGS[key]
    bad = set(overrides) - _ALLOWED
    if bad:
        raise TypeError(f"{key}: a verb may not change {', '.join(sorted(bad))} of a shared flag")
    kwargs = {**flag.kwargs, **overrides}
    default = kwargs.get("default")
    shown = f" (default {default})" if default not in (None, False) and "default" not in detail else ""
    text = flag.meaning + (f"; {detail}" if detail else "") + shown
    action = p.add_argument(*flag.names, help=text.replace("%", "%%"), **kwargs)
    action.edgedet_flag = key  # what the vocabulary test looks for
    for old in deprecated:
        deprecated_alias(p, old, dest=action.dest, new=flag.names[-1], key=key,
                         type=None if kwargs.get("action") else kwargs.get("type"),
                         choices=kwargs.get("choices"), nargs=kwargs.get("nargs"),
                         store_true=kwargs.get("action") == "store_true")
    return action


def deprecated_alias(p: argparse.ArgumentParser | argparse._ArgumentGroup, old: str, *, dest: str, new: str,
                     key: str = "", **kwargs: Any) -> argparse.Action:
    """An old spelling of ``new`` (hidden from --help) that warns once and fills ``dest``."""
    action = p.add_argument(old, action=_DeprecatedAlias, dest=dest, new=new, help=argparse.SUPPRESS, **kwargs)
    action.edgedet_flag = key or "deprecated"
    return action


def add_model(p: argparse.ArgumentParser, *, required: bool = True, device: bool = True) -> None:
    """``--model``/``--weights`` (and ``--device``): ``--weights none`` is the explicit way to random weights,
    so a forgotten ``--weights`` is an error, never a silently untrained model."""
    add(p, "model")
    add(p, "weights", required=required)
    if device:
        add(p, "device")


def add_dataset(p: argparse.ArgumentParser, *, required: bool = True, bad_images: bool = True) -> None:
    """``--data``/``--images``/``--max-images`` (and ``--bad-images``): a dataset to evaluate on."""
    add(p, "data", required=required)
    add(p, "images")
    add(p, "max-images")
    if bad_images:
        add(p, "bad-images")


def add_engine(p: argparse.ArgumentParser, *, required: bool = True, nargs: str | None = None) -> None:
    """``--engine``/``--backend``/``--device``/``--threads``: an artifact and where it runs."""
    from edgedet.runtime.detector import BACKENDS

    add(p, "engine", required=required, **({"nargs": nargs} if nargs else {}))
    add(p, "backend", choices=list(BACKENDS))
    add(p, "device")
    add(p, "threads")


def add_detection(p: argparse.ArgumentParser, *, score_default: float | None = 0.25) -> None:
    """The graph's detection settings (export): thresholds, K, candidates, input size, NMS flavour and mode."""
    add(p, "imgsz")
    add(p, "score-thresh", default=score_default)
    add(p, "iou-thresh", default=0.45)
    add(p, "max-dets")
    add(p, "max-candidates")
    add(p, "nms")
    add(p, "nms-mode")


def add_engine_positional(p: argparse.ArgumentParser) -> None:
    """``--engine FILE``, with the positional FILE of earlier releases still accepted (check, build)."""
    add(p, "engine", required=False, detail="the ONNX file")
    p.add_argument("legacy_engine", nargs="?", metavar="FILE", help=argparse.SUPPRESS)


def resolve_engine_positional(args: argparse.Namespace) -> str:
    """The ONNX path of :func:`add_engine_positional`: ``--engine``, else the positional (with a warning)."""
    from edgedet import log
    from edgedet.errors import EdgedetError

    if args.engine and args.legacy_engine:
        raise EdgedetError("give the ONNX file once: --engine FILE")
    if args.legacy_engine:
        log.warn("a positional ONNX file is deprecated and will be removed in the next release; use --engine FILE",
                 once=True)
        return args.legacy_engine
    if not args.engine:
        raise EdgedetError("--engine FILE is required (the ONNX file)")
    return args.engine


def parse_imgsz(values: list[int] | None) -> tuple[int, int] | None:
    """``--imgsz N`` or ``--imgsz H W`` as (H, W)."""
    from edgedet.errors import EdgedetError

    if values is None:
        return None
    if len(values) not in (1, 2):
        raise EdgedetError("--imgsz takes one size or H W")
    return (values[0], values[0]) if len(values) == 1 else (values[0], values[1])


# --------------------------------------------------------------------------------------------- docs table


def usage() -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Shared flag key → the verbs that take it, and → its old spellings (``--old (verb)``), read from the
    real parsers."""
    from edgedet.cli import build_parser

    verbs: dict[str, list[str]] = {}
    old: dict[str, list[str]] = {}
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))  # noqa: SLF001
    for verb, vp in sorted(sub.choices.items()):
        for action in vp._actions:  # noqa: SLF001 - argparse has no public list
            key = getattr(action, "edgedet_flag", None)
            if not key:
                continue
            if action.help != argparse.SUPPRESS:
                verbs.setdefault(key, []).append(verb)
            else:
                old.setdefault(key, []).extend(f"{o} ({verb})" for o in action.option_strings)
    return verbs, old


def markdown_table() -> str:
    """The vocabulary table of docs/cli.md: ``python -c "from edgedet.cli._vocabulary import markdown_table as t;
    print(t())"``."""
    used, old = usage()
    lines = ["| flag | meaning | verbs | old spelling, deprecated (verb) |", "|---|---|---|---|"]
    for key, flag in FLAGS.items():  # (old spellings of verb-local flags, such as synth's --video, are not here)
        names = ", ".join(f"`{n}`" for n in flag.names)
        verbs = "every verb" if key == "verbose" else ", ".join(dict.fromkeys(used.get(key, [])))
        spellings: dict[str, list[str]] = {}
        for entry in old.get(key, []):
            spelling, verb = entry.split(" ", 1)
            spellings.setdefault(spelling, []).append(verb.strip("()"))
        olds = "; ".join(f"`{s}` ({', '.join(v)})" for s, v in spellings.items())
        lines.append(f"| {names} | {flag.meaning.replace('|', '/')} | {verbs} | {olds} |")
    return "\n".join(lines)
