"""torch-export against the TorchScript exporter, per zoo model: export time (rounds interleaved), graph size
(nodes, initializer MB) and the latency of both graphs in ONNX Runtime and OpenVINO (interleaved round by round,
ratios torch-export / torchscript as the median of per-round ratios with their min–max spread).

Both graphs of a model hold the same random weights (seeded), so the latency compares graphs, not weights; the
detections of the two are compared on trained weights in tests/test_torch_export.py.

    python benchmarks/exporters.py [--models ssdlite320 fasterrcnn_mobilenet_v3_large_320_fpn] [--rounds 3]
        [--threads 2] [--markdown]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


from _interleave import Timings, interleave
from conformance_matrix import initializer_mb
from _markdown import ratio, table

EXPORTERS = ("torchscript", "torch-export")


@dataclass
class Row:
    model: str
    export_s: dict[str, list[float]]  # exporter → seconds per round
    nodes: dict[str, int]
    init_mb: dict[str, float]
    latency: Timings  # variants "<backend> <exporter>"


def _export(model: str, exporter: str, out: Path, imgsz) -> Path:
    import torch

    from edgedet.export.nms import NMSConfig
    from edgedet.export.onnx_export import ExportOptions, export_model

    torch.manual_seed(0)  # the same random weights for both exporters
    return export_model(ExportOptions(model=model, imgsz=imgsz, nms=NMSConfig("onnx", score_thresh=0.05),
                                      exporter=exporter, out_dir=str(out), name=f"{model}-{exporter}",
                                      force=True)).artifacts["fp32"]


def measure(model: str, rounds: int, threads: int, imgsz, tmp: Path) -> Row:
    import onnx

    from edgedet.export.parity import verify_images
    from edgedet.runtime import Detector

    export_s: dict[str, list[float]] = {e: [] for e in EXPORTERS}
    paths: dict[str, Path] = {}
    for _ in range(rounds):  # interleaved: torchscript, torch-export, torchscript, …
        for exporter in EXPORTERS:
            t0 = time.perf_counter()
            paths[exporter] = _export(model, exporter, tmp, imgsz)
            export_s[exporter].append(time.perf_counter() - t0)
    graphs = {e: onnx.load(str(p)) for e, p in paths.items()}
    nodes = {e: len(g.graph.node) for e, g in graphs.items()}
    init_mb = {e: initializer_mb(g) for e, g in graphs.items()}
    dets = {f"{b} {e}": Detector(p, backend=b, threads=threads) for e, p in paths.items()
            for b in ("onnxruntime", "openvino")}
    meta = next(iter(dets.values())).metadata["input"]
    batch = verify_images(1, None, tuple(meta["size"]), meta["resize"], meta["pad_value"])
    latency = interleave({name: (lambda d=d: d.raw(batch)) for name, d in dets.items()}, rounds=max(3, rounds),
                         iters=10, warmup=3)
    return Row(model, export_s, nodes, init_mb, latency)


def markdown(rows: list[Row]) -> str:
    """One row per model: sizes and export times of both exporters, latency ratios torch-export / torchscript."""
    headers = ["model", "nodes (TorchScript → torch-export)", "initializers MB", "export s",
               "export time ratio", "ONNX Runtime latency ratio", "OpenVINO latency ratio"]
    body = []
    for r in rows:
        old, new = (statistics.median(r.export_s[e]) for e in EXPORTERS)
        per_round = [b / a for a, b in zip(r.export_s["torchscript"], r.export_s["torch-export"])]
        body.append([r.model, f"{r.nodes['torchscript']} → {r.nodes['torch-export']}",
                     f"{r.init_mb['torchscript']:.1f} → {r.init_mb['torch-export']:.1f}", f"{old:.1f} → {new:.1f}",
                     ratio(per_round), r.latency.ratio_text("onnxruntime torch-export", "onnxruntime torchscript"),
                     r.latency.ratio_text("openvino torch-export", "openvino torchscript")])
    return table(headers, body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["ssdlite320", "fasterrcnn_mobilenet_v3_large_320_fpn"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--fasterrcnn-imgsz", type=int, default=320)
    ap.add_argument("--markdown", action="store_true", help="print markdown tables (for docs/performance.md)")
    args = ap.parse_args()

    from edgedet.models import get_model_entry

    rows = []
    with tempfile.TemporaryDirectory(prefix="edgedet-exporters-") as tmp:
        for model in args.models:
            imgsz = (args.fasterrcnn_imgsz,) * 2 if get_model_entry(model).deploy.sized_by_builder else None
            rows.append(measure(model, args.rounds, args.threads, imgsz, Path(tmp)))
            r = rows[-1]
            print(f"{model}: nodes {r.nodes}, export s {r.export_s}, "
                  f"ORT {r.latency.ratio_text('onnxruntime torch-export', 'onnxruntime torchscript')}, "
                  f"OpenVINO {r.latency.ratio_text('openvino torch-export', 'openvino torchscript')}", flush=True)
    if args.markdown:
        print("\n" + markdown(rows))


if __name__ == "__main__":
    main()
