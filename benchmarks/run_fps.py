"""`edgedet run` pipeline FPS against the model-only FPS that `edgedet bench` reports, in one run.

Headless, on a synthetic video, ssdlite320 exported to ONNX and run on the CPU. The pipeline adds
video decoding (on its own thread), host resize, box mapping and drawing; the target is that it keeps
at least 90 % of the model-only rate.

    python benchmarks/run_fps.py [--model ssdlite320] [--threads 2] [--frames 300] [--markdown]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from _markdown import table as markdown_table
from edgedet.data.synth import write_video
from edgedet.export.onnx_export import ExportOptions, export_model
from edgedet.runtime import Detector
from edgedet.runtime.bench import benchmark
from edgedet.runtime.pipeline import run_video


def markdown(model_fps: float, rows: list[tuple[str, int, float]]) -> str:
    """docs/performance.md's "`run` against `bench`" table: per pipeline (label, frames, FPS), the model-only FPS
    beside it and the share of it the pipeline keeps."""
    return markdown_table(["pipeline", "model-only FPS (`bench`)", "pipeline FPS (`run`)", "ratio"],
                          [(label, f"{model_fps:.1f}", f"{fps:.1f}", f"{fps / model_fps * 100:.0f} %")
                           for label, _, fps in rows])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ssdlite320")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--size", type=int, nargs=2, default=(640, 480), metavar=("W", "H"), help="video frame size")
    ap.add_argument("--markdown", action="store_true", help="print markdown tables (for docs/performance.md)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = export_model(ExportOptions(model=args.model, out_dir=tmp)).artifacts["fp32"]
        video = write_video(Path(tmp) / "video.mp4", frames=args.frames, size=tuple(args.size))
        det = Detector(onnx_path, threads=args.threads)
        bench = benchmark(det, iters=args.frames, warmup=20)
        run_video(det, str(video), headless=True, max_frames=20)  # warm the decoder
        rows = []
        for label, save in (("headless", None), ("headless, drawing and saving MP4", str(Path(tmp) / "out.mp4"))):
            t0 = time.perf_counter()
            stats = run_video(det, str(video), headless=True, save=save)
            rows.append((label, stats.frames, stats.frames / (time.perf_counter() - t0)))
        bench2 = benchmark(det, iters=args.frames, warmup=5)  # bracket the run: the machine may drift
    model_fps = 2000.0 / (bench.mean_ms + bench2.mean_ms)
    if args.markdown:
        print(markdown(model_fps, rows))
        return
    table = Table(title=f"{args.model}: `edgedet run` vs `edgedet bench`, CPU, {args.threads} threads, {args.size[0]}x{args.size[1]} video")
    for col in ("pipeline", "model-only FPS (bench)", "pipeline FPS (run)", "ratio", "frames"):
        table.add_column(col, justify="right")
    for label, frames, fps in rows:
        table.add_row(label, f"{model_fps:.1f}", f"{fps:.1f}", f"{fps / model_fps * 100:.0f}%", str(frames))
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
