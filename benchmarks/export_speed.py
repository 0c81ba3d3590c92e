"""Exported graphs against torchvision's own model, in one run, on this machine's CPU, interleaved.

For each model: torchvision eager PyTorch, a plain ``torch.onnx.export`` of torchvision's model run in
ONNX Runtime (SSD family), edgedet's static export in ONNX Runtime and in OpenVINO, FP32 and INT8 (uint8
image in, four outputs out), and — for the post-processing overhead — edgedet's graph cut after the heads
(raw backbone + head, same runtime). Same weights (random init: no pretrained weights offline), same
thresholds, same image, batch 1. Every variant of a model runs once per round, round after round; ratios
are medians of per-round ratios with their min–max spread. Faster R-CNN is also exported at
``--rpn-post-nms-top-n 50`` (the engine's speed knob).

    python benchmarks/export_speed.py [--threads 2] [--rounds 7] [--models ssdlite320 fasterrcnn_mobilenet_v3_large_320_fpn]
        [--markdown]
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
import warnings
from pathlib import Path

import onnx
import onnxruntime as ort
import openvino as ov
import torch
from rich.console import Console
from rich.table import Table

from _interleave import Timings, interleave
from _markdown import table as markdown_table
from edgedet.data.synth import make_synthetic_dataset

from edgedet.export.nms import NMSConfig
from edgedet.export.onnx_export import ExportOptions, export_model
from edgedet.export.parity import verify_images
from edgedet.export.wrappers import build_wrapper, configure_reference, pad_value
from edgedet.models import create_model, get_model_entry


def session(model_bytes: bytes, threads: int) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])


def openvino_model(model_bytes: bytes, threads: int):
    core = ov.Core()
    compiled = core.compile_model(core.read_model(model_bytes, b""), "CPU",
                                  {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    return lambda feed: request.infer(list(feed.values())[0])


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


def bench_model(name: str, score_thresh: float, threads: int, rounds: int, workdir: Path, calib: str,
                rpn_top_n: int | None = None) -> dict:
    entry = get_model_entry(name)
    size = tuple(entry.input_size)
    nms = NMSConfig("onnx", score_thresh=score_thresh, iou_thresh=0.45, max_dets=100)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    stem = f"{name}-{score_thresh}-{rpn_top_n}"
    opts = ExportOptions(model=name, nms=nms, out_dir=str(workdir), name=stem, force=True, int8=True,
                         calib_images=calib, calib_count=32, rpn_post_nms_top_n=rpn_top_n)
    result = export_model(opts)
    export_s = time.perf_counter() - t0
    path, int8 = result.artifacts["fp32"], result.artifacts["int8"]
    # the exported weights are re-created by seed: rebuild the same model for eager and plain export
    torch.manual_seed(0)
    kwargs = entry.deploy.builder_sizes(size)
    if rpn_top_n:
        kwargs["rpn_post_nms_top_n_test"] = rpn_top_n
    model = configure_reference(create_model(name, **kwargs).eval(), entry.deploy, size, nms)
    image = verify_images(1, None, size, entry.deploy.resize, pad_value(model))  # uint8 [1, H, W, 3]
    tensor = torch.from_numpy(image[0]).permute(2, 0, 1).float() / 255
    feed = {"images": image}

    row = {"model": name + (f" (P={rpn_top_n})" if rpn_top_n else ""), "name": name, "rpn_top_n": rpn_top_n,
           "score_thresh": score_thresh, "export_s": export_s, "onnx_mb": path.stat().st_size / 1e6}
    ort_fp32, ort_int8 = (session(p.read_bytes(), threads) for p in (path, int8))
    ov_fp32, ov_int8 = (openvino_model(p.read_bytes(), threads) for p in (path, int8))
    variants = {
        "eager": lambda: model([tensor]),
        "ort": lambda: ort_fp32.run(None, feed), "ort_int8": lambda: ort_int8.run(None, feed),
        "ov": lambda: ov_fp32(feed), "ov_int8": lambda: ov_int8(feed),
    }
    if entry.family == "ssd":
        wrapper = build_wrapper(model, entry.deploy, size, score_thresh=score_thresh, max_candidates=1000).eval()
        raw_bytes = export_bytes(RawHeads(wrapper), (torch.from_numpy(image),), input_names=["images"])
        raw_ort, raw_ov = session(raw_bytes, threads), openvino_model(raw_bytes, threads)
        variants["raw_ort"] = lambda: raw_ort.run(None, feed)
        variants["raw_ov"] = lambda: raw_ov(feed)
        t0 = time.perf_counter()
        plain_bytes = export_bytes(model, ([tensor],), input_names=["image"])
        row["plain_export_s"] = time.perf_counter() - t0
        plain = session(plain_bytes, threads)
        plain_feed = {plain.get_inputs()[0].name: tensor.numpy()}
        variants["plain"] = lambda: plain.run(None, plain_feed)
        row["plain_nodes"] = len(onnx.load_from_string(plain_bytes).graph.node)
    with torch.inference_mode():
        row["t"] = interleave(variants, rounds=rounds, iters=5)
    row["edgedet_nodes"] = len(onnx.load(str(path)).graph.node)
    return row


#: docs/performance.md's target for edgedet's ONNX Runtime graph against a plain ``torch.onnx.export`` at the COCO
#: evaluation threshold; the markdown bolds a ratio that meets it.
PLAIN_EXPORT_TARGET = 8.0


def _ms(t: Timings, k: str, missing: str) -> str:
    """A variant's median ms, or ``missing`` where the model has no such variant (no plain export or raw-heads
    graph of Faster R-CNN)."""
    return f"{t.median_ms(k):.1f}" if k in t.rounds else missing


def _ratio(t: Timings, a: str, b: str, missing: str, target: float | None = None) -> str:
    """``a / b`` as median (min–max) of rounds, its median bold when it meets ``target``; ``missing`` without both."""
    if a not in t.rounds or b not in t.rounds:
        return missing
    return t.ratio_text(a, b, emphasis=target is not None and t.ratio(a, b)[0] >= target)


def markdown(rows: list[dict]) -> str:
    """docs/performance.md's "Export speed" table from ``bench_model``'s rows: ms as medians of rounds, ratios as
    medians of per-round ratios (min–max), "—" for a variant the model lacks; a proposal-count row right after its
    model's row reads "same, P=…"."""
    body, previous = [], None
    for r in rows:
        t = r["t"]
        same = r["rpn_top_n"] and r["name"] == previous
        previous = r["name"]
        body.append([f"same, P={r['rpn_top_n']}" if same else r["model"], f"{r['score_thresh']:g}",
                     *(_ms(t, k, "—") for k in ("eager", "plain", "ort", "ov", "ort_int8", "ov_int8")),
                     _ratio(t, "plain", "ort", "—", PLAIN_EXPORT_TARGET),
                     *(_ratio(t, a, b, "—") for a, b in (("ort", "ov"), ("ov", "ov_int8"), ("ort", "raw_ort"),
                                                         ("ov", "raw_ov")))])
    return markdown_table(
        ["model", "score", "eager", "plain `torch.onnx.export` (ORT)", "edgedet ORT", "edgedet OpenVINO", "ORT INT8",
         "OpenVINO INT8", "× plain export (ORT)", "OpenVINO / ORT, FP32", "OpenVINO INT8 / FP32",
         "end-to-end / heads only, ORT", "end-to-end / heads only, OpenVINO"], body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--models", nargs="+", default=["ssdlite320", "fasterrcnn_mobilenet_v3_large_320_fpn"])
    ap.add_argument("--score-thresh", type=float, nargs="+", default=[0.25, 0.001],
                    help="operating points: deployment (0.25) and COCO evaluation (0.001)")
    ap.add_argument("--markdown", action="store_true", help="print markdown tables (for docs/performance.md)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        calib = str(make_synthetic_dataset(Path(tmp) / "calib", images=32).images_dir)
        for name in args.models:
            for thr in args.score_thresh:
                rows.append(bench_model(name, thr, args.threads, args.rounds, Path(tmp), calib))
                if get_model_entry(name).family == "fasterrcnn":
                    rows.append(bench_model(name, thr, args.threads, args.rounds, Path(tmp), calib, rpn_top_n=50))
    if args.markdown:
        print(markdown(rows))
        return
    table = Table(title=f"edgedet export vs torchvision, CPU, {args.threads} threads, batch 1, {args.rounds} "
                        "interleaved rounds (median ms; ratios: median of per-round ratios, min–max)")
    for col in ("model", "score", "eager", "plain ONNX (ORT)", "edgedet ORT", "edgedet OpenVINO", "ORT INT8",
                "OpenVINO INT8", "× plain ONNX (ORT)", "OpenVINO / ORT", "OpenVINO INT8 / FP32",
                "end-to-end / heads only (ORT)", "end-to-end / heads only (OpenVINO)", "nodes (plain → edgedet)"):
        table.add_column(col, justify="right")
    for r in rows:
        t = r["t"]
        table.add_row(
            r["model"], f"{r['score_thresh']:g}",
            *(_ms(t, k, "-") for k in ("eager", "plain", "ort", "ov", "ort_int8", "ov_int8")),
            _ratio(t, "plain", "ort", "-"), _ratio(t, "ort", "ov", "-"), _ratio(t, "ov", "ov_int8", "-"),
            _ratio(t, "ort", "raw_ort", "-"), _ratio(t, "ov", "raw_ov", "-"),
            f"{r['plain_nodes']} → {r['edgedet_nodes']}" if "plain_nodes" in r else f"{r['edgedet_nodes']}",
        )
    Console(width=260).print(table)


if __name__ == "__main__":
    main()
