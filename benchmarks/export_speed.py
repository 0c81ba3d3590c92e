"""Exported graphs against torchvision's own model, in one run, on this machine's CPU.

For each model: torchvision eager PyTorch, a plain ``torch.onnx.export`` of torchvision's model run in
ONNX Runtime (SSD family), edgedet's static export in ONNX Runtime (uint8 image in, four outputs out),
and — for the post-processing overhead — edgedet's graph cut after the heads (raw backbone + head).
Same weights (random init: no pretrained weights offline), same thresholds, same images, batch 1.

    python benchmarks/export_speed.py [--threads 2] [--iters 30] [--models ssdlite320 fasterrcnn_mobilenet_v3_large_320_fpn]
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import onnx
import onnxruntime as ort
import torch
from rich.console import Console
from rich.table import Table

from edgedet.export.nms import NMSConfig
from edgedet.export.onnx_export import ExportOptions, export_model
from edgedet.export.parity import verify_images
from edgedet.export.wrappers import RESIZE_MODE, build_wrapper, configure_reference, pad_value
from edgedet.models import create_model, get_model_entry


def timed(fn, iters: int, warmup: int = 3) -> float:
    """Median milliseconds of ``fn()``."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def session(model_bytes: bytes, threads: int) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])


class RawHeads(torch.nn.Module):
    """edgedet's graph cut after the detection heads: the cost without any post-processing."""

    def __init__(self, wrapper: torch.nn.Module) -> None:
        super().__init__()
        self.w = wrapper

    def forward(self, images: torch.Tensor):
        x = self.w.normalize(images)
        head = self.w.head(list(self.w.backbone(x).values()))
        return head["bbox_regression"], head["cls_logits"]


def export_bytes(module: torch.nn.Module, args: tuple, **kw) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, buf, dynamo=False, opset_version=17, **kw)
    return buf.getvalue()


def bench_model(name: str, score_thresh: float, threads: int, iters: int, workdir: Path) -> dict:
    entry = get_model_entry(name)
    size = tuple(entry.input_size)
    nms = NMSConfig("onnx", score_thresh=score_thresh, iou_thresh=0.45, max_dets=100)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    opts = ExportOptions(model=name, nms=nms, out_dir=str(workdir), name=f"{name}-{score_thresh}", force=True)
    result = export_model(opts)
    export_s = time.perf_counter() - t0
    path = result.artifacts["fp32"]
    # the exported weights are re-created by seed: rebuild the same model for eager and plain export
    torch.manual_seed(0)
    kwargs = {"min_size": min(size), "max_size": max(size)} if entry.family == "fasterrcnn" else {}
    model = configure_reference(create_model(name, **kwargs).eval(), entry.family, size, nms)
    image = verify_images(1, None, size, RESIZE_MODE[entry.family], pad_value(model))  # uint8 [1, H, W, 3]
    tensor = torch.from_numpy(image[0]).permute(2, 0, 1).float() / 255

    row = {"model": name, "score_thresh": score_thresh, "export_s": export_s, "onnx_mb": path.stat().st_size / 1e6}
    with torch.inference_mode():
        row["eager_ms"] = timed(lambda: model([tensor]), iters)
    ours = session(path.read_bytes(), threads)
    row["edgedet_ms"] = timed(lambda: ours.run(None, {"images": image}), iters)
    if entry.family == "ssd":
        wrapper = build_wrapper(model, "ssd", size, score_thresh=score_thresh, max_candidates=1000).eval()
        raw = session(export_bytes(RawHeads(wrapper), (torch.from_numpy(image),), input_names=["images"]), threads)
        row["raw_ms"] = timed(lambda: raw.run(None, {"images": image}), iters)
        t0 = time.perf_counter()
        plain_bytes = export_bytes(model, ([tensor],), input_names=["image"])
        row["plain_export_s"] = time.perf_counter() - t0
        plain = session(plain_bytes, threads)
        feed = {plain.get_inputs()[0].name: tensor.numpy()}
        row["plain_onnx_ms"] = timed(lambda: plain.run(None, feed), iters)
        row["plain_onnx_mb"] = len(plain_bytes) / 1e6
        row["plain_nodes"] = len(onnx.load_from_string(plain_bytes).graph.node)
    row["edgedet_nodes"] = len(onnx.load(str(path)).graph.node)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--models", nargs="+", default=["ssdlite320", "fasterrcnn_mobilenet_v3_large_320_fpn"])
    ap.add_argument("--score-thresh", type=float, nargs="+", default=[0.25, 0.001],
                    help="operating points: deployment (0.25) and COCO evaluation (0.001)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            for thr in args.score_thresh:
                rows.append(bench_model(name, thr, args.threads, args.iters, Path(tmp)))
    table = Table(title=f"edgedet export vs torchvision, CPU, {args.threads} threads, batch 1, median of {args.iters}")
    for col in ("model", "score", "eager ms", "plain ONNX ms", "edgedet ms", "raw heads ms",
                "× vs eager", "× vs plain ONNX", "post-proc overhead", "export s", "edgedet MB", "nodes (plain → edgedet)"):
        table.add_column(col, justify="right")
    for r in rows:
        raw = r.get("raw_ms")
        table.add_row(
            r["model"], f"{r['score_thresh']:g}", f"{r['eager_ms']:.1f}",
            f"{r['plain_onnx_ms']:.1f}" if "plain_onnx_ms" in r else "-", f"{r['edgedet_ms']:.1f}",
            f"{raw:.1f}" if raw else "-", f"{r['eager_ms'] / r['edgedet_ms']:.1f}×",
            f"{r['plain_onnx_ms'] / r['edgedet_ms']:.1f}×" if "plain_onnx_ms" in r else "-",
            f"{(r['edgedet_ms'] - raw) / raw * 100:.0f}%" if raw else "-",
            f"{r['export_s']:.1f}", f"{r['onnx_mb']:.1f}",
            f"{r['plain_nodes']} → {r['edgedet_nodes']}" if "plain_nodes" in r else f"{r['edgedet_nodes']}",
        )
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
