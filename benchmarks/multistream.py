"""Many streams through one engine: aggregate FPS of `edgedet run`'s pipeline at 1, 2, 4 and 8 file streams,
against the engine alone at the same batch; capture-to-output latency of live sources; a soak.

Per model and CPU runtime: a dynamic-batch export (max 8); synthetic 320x240 videos, one per stream; headless,
no outputs (the outputs stage is timed by `run_fps.py`). Variants are interleaved round by round and ratios are
medians of per-round ratios with their min-max spread:

- ``N streams / 1``: aggregate FPS at N streams over aggregate FPS at 1 (batching's gain);
- ``pipeline / engine``: the pipeline's aggregate FPS over `edgedet bench`'s throughput at batch N (what decode,
  resize, box mapping and the stages cost).

Live: MJPEG-over-HTTP cameras on 127.0.0.1 (what IP cameras serve) at 30 FPS, 1 and 4 of them; latency from the
frame's decode to its result reaching the consumer, p50/p99. Soak (``--soak``): 10 000 frames over 4 streams,
resident memory at start and end, and every frame accounted for.

    python benchmarks/multistream.py --weights runs/.../best.pt [--models fixture ssdlite320]
        [--backends onnxruntime openvino] [--rounds 3] [--frames 60] [--soak] [--markdown]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from _markdown import ratio
from _markdown import table as markdown_table
from edgedet.data.mjpeg import MjpegCamera
from edgedet.data.synth import write_video
from edgedet.export.onnx_export import ExportOptions, export_model
from edgedet.runtime import Detector, StreamPipeline
from edgedet.runtime.bench import benchmark

LIVE_SECONDS = 4.0


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def _pipeline_fps(det: Detector, sources: list[str]) -> tuple[float, int]:
    t0 = time.perf_counter()
    frames = 0
    with StreamPipeline(det, sources) as pipe:
        for _ in pipe:
            frames += 1
    return frames / (time.perf_counter() - t0), frames


def _live_latency(det: Detector, frames: list[np.ndarray], streams: int) -> tuple[float, float, float]:
    """p50 and p99 latency (ms) and the delivered FPS per stream, ``streams`` cameras at 30 FPS."""
    n = int(30 * LIVE_SECONDS)
    cameras = [MjpegCamera(frames[:n] if len(frames) >= n else (frames * (n // len(frames) + 1))[:n], fps=30)
               for _ in range(streams)]
    lat, count = [], 0
    try:
        t0 = time.perf_counter()
        with StreamPipeline(det, [c.url for c in cameras]) as pipe:
            for r in pipe:
                lat.append(1000 * (time.perf_counter() - r.captured))
                count += 1
        seconds = time.perf_counter() - t0
    finally:
        for c in cameras:
            c.close()
    return float(np.percentile(lat, 50)), float(np.percentile(lat, 99)), count / seconds / streams


def result_tables(rows: list[tuple], live_rows: list[tuple],
                  soak_rows: list[tuple]) -> list[tuple[str, list[str], list]]:
    """(title, columns, rows of text) per table, from the measured rows of ``main``: the one source of the rich
    tables and of the markdown ones, so both show the same figures the same way.

    ``rows``: (model, runtime, streams, pipeline FPS, engine FPS, per-round N/1 ratios, per-round pipeline/engine
    ratios); ``live_rows``: (model, runtime, cameras, p50 ms, p99 ms, FPS per camera); ``soak_rows``: (model,
    runtime, frames, FPS, RSS MiB at start, at end).
    """
    tables = [
        ("Aggregate FPS, file streams (pipeline) against the engine alone at batch N",
         ["model", "runtime", "streams", "pipeline FPS", "engine FPS at batch N", "N streams / 1", "pipeline / engine"],
         [(m, b, str(n), f"{f:.1f}", f"{e:.1f}", ratio(g), ratio(x)) for m, b, n, f, e, g, x in rows]),
        (f"Live sources (MJPEG over HTTP, 30 FPS each, {LIVE_SECONDS:.0f} s): decode-to-result latency",
         ["model", "runtime", "cameras", "p50 ms", "p99 ms", "FPS per camera"],
         [(m, b, str(n), f"{p50:.0f}", f"{p99:.0f}", f"{f:.1f}") for m, b, n, p50, p99, f in live_rows]),
    ]
    if soak_rows:
        tables.append(("Soak: 4 streams of 2 500 frames", ["model", "runtime", "frames", "FPS", "RSS start MiB", "RSS end MiB"],
                       [(m, b, str(c), f"{f:.1f}", f"{a:.0f}", f"{z:.0f}") for m, b, c, f, a, z in soak_rows]))
    return tables


def markdown(tables: list[tuple[str, list[str], list]]) -> str:
    """The tables of docs/performance.md's "Many streams, one engine", each after a blank line and its title."""
    return "\n".join(f"\n{title}\n\n" + markdown_table(cols, body) for title, cols, body in tables)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", help="an edgedet checkpoint: the 'fixture' model")
    ap.add_argument("--models", nargs="+", default=["fixture", "ssdlite320"])
    ap.add_argument("--backends", nargs="+", default=["onnxruntime", "openvino"])
    ap.add_argument("--streams", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--frames", type=int, default=60, help="frames per stream and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--soak", action="store_true", help="also 10 000 frames over 4 streams")
    ap.add_argument("--markdown", action="store_true", help="print markdown tables (for docs/performance.md)")
    args = ap.parse_args()
    if "fixture" in args.models and not args.weights:
        ap.error("--weights is needed for the 'fixture' model")
    console = Console(width=200)
    rows, live_rows, soak_rows = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        videos = [str(write_video(Path(tmp) / f"s{i}.mp4", frames=args.frames, seed=i)) for i in range(max(args.streams))]
        import cv2

        cap = cv2.VideoCapture(videos[0])
        frames = []
        while (ok := cap.read())[0]:
            frames.append(cv2.cvtColor(ok[1], cv2.COLOR_BGR2RGB))
        for model in args.models:
            opts = (ExportOptions(model=None, weights=args.weights, dynamic_batch=8, out_dir=f"{tmp}/{model}")
                    if model == "fixture" else ExportOptions(model=model, dynamic_batch=8, out_dir=f"{tmp}/{model}"))
            onnx = export_model(opts).artifacts["fp32"]
            for backend in args.backends:
                det = Detector(onnx, backend=backend, threads=args.threads)
                _pipeline_fps(det, videos[:1])  # warm decoders and the engine
                fps = {n: [] for n in args.streams}
                engine = {n: [] for n in args.streams}
                for _ in range(args.rounds):  # interleaved: every variant once per round
                    for n in args.streams:
                        f, count = _pipeline_fps(det, videos[:n])
                        assert count == n * args.frames, (count, n)
                        fps[n].append(f)
                        engine[n].append(benchmark(det, batch=n, iters=max(3, 24 // n), warmup=1).throughput_ips)
                base = fps[args.streams[0]]
                for n in args.streams:
                    gain = [a / b for a, b in zip(fps[n], base)]
                    eff = [a / b for a, b in zip(fps[n], engine[n])]
                    rows.append((model, backend, n, statistics.median(fps[n]), statistics.median(engine[n]),
                                 gain, eff))
                for n in (1, 4):
                    live_rows.append((model, backend, n, *_live_latency(det, frames, n)))
                if args.soak and model == args.models[0] and backend == args.backends[0]:
                    soak = [str(write_video(Path(tmp) / f"soak{i}.mp4", frames=2500, seed=i)) for i in range(4)]
                    before = _rss_mib()
                    f, count = _pipeline_fps(det, soak)
                    soak_rows.append((model, backend, count, f, before, _rss_mib()))

    tables = result_tables(rows, live_rows, soak_rows)
    if args.markdown:
        print(markdown(tables))
        return
    for title, cols, body in tables:
        table = Table(title=title)
        for c in cols:
            table.add_column(c, justify="right")
        for row in body:
            table.add_row(*row)
        console.print(table)


if __name__ == "__main__":
    main()
