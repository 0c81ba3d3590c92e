"""What IoU-Net costs in an exported graph, interleaved: the IoU head, then IoU-guided NMS, against plain NMS.

Three graphs of one IoU-Net checkpoint, timed round by round on the same real image (``Detector.raw``):

* ``plain``: the standard export (``--nms-mode standard``): the IoU head is not in the graph;
* ``head``: the IoU head runs on every candidate and its output is added, times zero, to the scores (so no
  runtime can prune it), but the NMS is still the standard one: the head's cost alone;
* ``iou-nms``: ``--nms-mode iou``: the head plus the IoU-guided NMS tail (NonMaxSuppression on the IoU
  ranking and the K × K cluster step).

Ratios are medians of per-round ratios with their min–max spread, per CPU runtime and ``--max-candidates``.

    python benchmarks/iou_net_latency.py --weights runs/frcnn_iou/best.pt --images synth/images [--markdown]

A backbone-dominated model needs no training to be timed: ``--model fasterrcnn_resnet50_fpn --imgsz 320
--rpn-post-nms-top-n 100`` times that architecture with random weights and an IoU head (three classes). The IoU
modes take every (proposal, class) pair, so each ``--max-candidates`` must be at least proposals × classes.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper
from rich.console import Console
from rich.table import Table

from _interleave import Timings, interleave
from _markdown import table as markdown_table
from edgedet.export.nms import CANDIDATES, IOU_CANDIDATE, NMSConfig, append_nms
from edgedet.export.exporters import resolve_opset
from edgedet.export.onnx_export import ExportOptions, _build, _torch_export, export_model
from edgedet.export.wrappers import build_wrapper
from edgedet.data.imageio import read_image
from edgedet.runtime import Detector
from edgedet.runtime.preprocess import preprocess_batch


def head_only_graph(weights: str, nms: NMSConfig, max_candidates: int, path: Path, **export: Any) -> Path:
    """The IoU head in the graph, its prediction added ×0 to the scores, and the standard NMS tail."""
    opts = ExportOptions(model=None, weights=weights, nms=nms, max_candidates=max_candidates, **export)
    built = _build(opts)
    wrapper = build_wrapper(built.model, built.entry.deploy, built.size, score_thresh=nms.score_thresh,
                            max_candidates=max_candidates, iou_rank="iou").eval()
    graph = _torch_export(wrapper, 1, False, built.size, resolve_opset(opts.exporter, opts.opset),
                          (*CANDIDATES, IOU_CANDIDATE), opts.exporter)
    for node in graph.graph.node:
        node.output[:] = ["bench/scores_raw" if o == "cand_scores" else o for o in node.output]
    zero = numpy_helper.from_array(np.zeros((), np.float32), "bench/zero")
    graph.graph.initializer.append(zero)
    graph.graph.node.extend([helper.make_node("Mul", [IOU_CANDIDATE, "bench/zero"], ["bench/iou_zero"]),
                             helper.make_node("Add", ["bench/scores_raw", "bench/iou_zero"], ["cand_scores"])])
    graph.graph.output.remove(next(o for o in graph.graph.output if o.name == IOU_CANDIDATE))
    graph = append_nms(graph, nms, input_size=built.size, num_classes=len(built.classes))
    onnx.save(graph, str(path))
    return path


#: The runtimes by the names the docs use.
RUNTIME_NAMES = {"onnxruntime": "ONNX Runtime", "openvino": "OpenVINO"}


def random_iou_checkpoint(model: str, path: Path) -> str:
    """``model`` with random weights and an IoU head (three classes), saved as an edgedet checkpoint."""
    from edgedet.checkpoint import save_checkpoint
    from edgedet.models import create_model

    classes = ["a", "b", "c"]
    net = create_model(model, weights="none", classes=classes, iou_head=True)
    save_checkpoint(path, {"model": model, "model_kwargs": dict(net.edgedet_kwargs), "classes": classes,
                           "state_dict": net.state_dict()})
    return str(path)


def markdown(results: list[tuple[str, int, Timings]]) -> str:
    """docs/performance.md's IoU-Net latency table from (runtime, K, timings of plain/head/iou-nms) per row: median
    ms to one decimal, ratios as medians of per-round ratios (min–max)."""
    return markdown_table(
        ["runtime", "K", "plain ms", "head ms", "iou-nms ms", "head vs plain", "IoU-NMS vs head", "iou-nms vs plain"],
        [(RUNTIME_NAMES.get(runtime, runtime), str(k), *(f"{t.median_ms(n):.1f}" for n in ("plain", "head", "iou-nms")),
          t.ratio_text("head", "plain"), t.ratio_text("iou-nms", "head"), t.ratio_text("iou-nms", "plain"))
         for runtime, k, t in results])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = ap.add_mutually_exclusive_group(required=True)
    source.add_argument("--weights", help="an IoU-Net checkpoint (trained with --model-arg iou_head=true)")
    source.add_argument("--model", help="a zoo Faster R-CNN timed with random weights and an IoU head")
    ap.add_argument("--imgsz", type=int, nargs="+", help="graph input size (default: the model's)")
    ap.add_argument("--rpn-post-nms-top-n", type=int, help="proposals per image (default: the model's)")
    ap.add_argument("--images", required=True, help="an image folder; the first image is timed")
    ap.add_argument("--max-candidates", type=int, nargs="+", default=[1000, 300])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--markdown", action="store_true", help="print markdown tables (for docs/performance.md)")
    args = ap.parse_args()
    image = read_image(sorted(p for p in Path(args.images).iterdir() if p.suffix.lower() in (".jpg", ".png"))[0])
    export = {"imgsz": tuple((args.imgsz * 2)[:2]) if args.imgsz else None,
              "rpn_post_nms_top_n": args.rpn_post_nms_top_n}
    title = Path(args.weights).name if args.weights else f"{args.model} (random weights)"
    table = Table(title=f"{title}: engine-only ms per image, CPU, {args.threads} threads, "
                        f"{args.rounds} interleaved rounds of {args.iters}")
    for col in ("runtime", "K", "plain", "head", "iou-nms", "head vs plain", "IoU-NMS vs head", "iou-nms vs plain"):
        table.add_column(col, justify="right")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        weights = args.weights or random_iou_checkpoint(args.model, Path(tmp) / "random_iou.pt")
        for k in args.max_candidates:
            paths = {}
            for mode in ("standard", "iou"):
                nms = NMSConfig(score_thresh=0.05, iou_thresh=0.5, mode=mode)
                res = export_model(ExportOptions(model=None, weights=weights, nms=nms, max_candidates=k,
                                                 out_dir=tmp, name=f"{mode}_{k}", **export))
                paths["plain" if mode == "standard" else "iou-nms"] = res.artifacts["fp32"]
            paths["head"] = head_only_graph(weights, NMSConfig(score_thresh=0.05, iou_thresh=0.5), k,
                                            Path(tmp) / f"head_{k}.onnx", **export)
            paths["head"].with_suffix(".json").write_text(paths["plain"].with_suffix(".json").read_text())
            for runtime in ("onnxruntime", "openvino"):
                dets = {name: Detector(paths[name], backend=runtime, threads=args.threads)
                        for name in ("plain", "head", "iou-nms")}
                first = dets["plain"]
                batch, _ = preprocess_batch([image], first.input_size, first.resize, tuple(first.pad_value))
                t = interleave({n: (lambda d=d: d.raw(batch)) for n, d in dets.items()}, rounds=args.rounds,
                               iters=args.iters)
                results.append((runtime, k, t))
                table.add_row(runtime, str(k), *(f"{t.median_ms(n):.2f}" for n in dets),
                              t.ratio_text("head", "plain"), t.ratio_text("iou-nms", "head"),
                              t.ratio_text("iou-nms", "plain"))
    if args.markdown:
        print(markdown(results))
    else:
        Console(width=200).print(table)


if __name__ == "__main__":
    main()
