"""C++ runtime against the Python Detector on the same OpenVINO backend and export, interleaved.

    cmake -S runtime/cpp -B build/cpp && cmake --build build/cpp -j
    python benchmarks/cpp_vs_python.py --model ssdlite320
    python benchmarks/cpp_vs_python.py --weights runs/demo/train/best.pt      # the demo's model
    python benchmarks/cpp_vs_python.py --model ssdlite320 --markdown          # a row of docs/performance.md

End to end, one 640×480 RGB frame per call, in one process: the C++ Detector through the C API (ctypes, a
call of a few microseconds), the Python Detector, and Python's backend-only call on the already resized buffer
(``Detector.raw``), variant after variant in every round. Host time (preprocess + postprocess) comes from the
detect() calls themselves: ``edgedet-cpp bench`` and ``edgedet.runtime.bench`` run alternately, round by round,
each reporting its host work and the backend call inside the same calls. Ratios are medians of per-round
ratios with their spread (min–max).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
from rich.console import Console
from rich.table import Table

from _interleave import Timings, interleave
from _markdown import ratio
from _markdown import table as markdown_table
from edgedet.export.onnx_export import ExportOptions, export_model
from edgedet.runtime import Detector
from edgedet.runtime.bench import benchmark


class CDetector:
    """The C API of libedgedet, loaded with ctypes: what a C application calls."""

    def __init__(self, lib: Path, engine: Path, threads: int) -> None:
        self.lib = ctypes.CDLL(str(lib))

        class Options(ctypes.Structure):
            _fields_ = [("backend", ctypes.c_char_p), ("device", ctypes.c_int), ("threads", ctypes.c_int)]

        class Detection(ctypes.Structure):
            _fields_ = [("x1", ctypes.c_float), ("y1", ctypes.c_float), ("x2", ctypes.c_float), ("y2", ctypes.c_float),
                        ("score", ctypes.c_float), ("label", ctypes.c_int), ("class_name", ctypes.c_char_p)]

        self.lib.edgedet_last_error.restype = ctypes.c_char_p
        self.handle = ctypes.c_void_p()
        opts = Options(b"openvino", 0, threads)
        if self.lib.edgedet_create(str(engine).encode(), ctypes.byref(opts), ctypes.byref(self.handle)) != 0:
            raise SystemExit(f"edgedet_create: {self.lib.edgedet_last_error().decode()}")
        self.out = (Detection * 1024)()
        self.count = ctypes.c_int()

    def __call__(self, rgb: np.ndarray) -> int:
        h, w = rgb.shape[:2]
        status = self.lib.edgedet_detect(self.handle, rgb.ctypes.data_as(ctypes.c_void_p), w, h, ctypes.c_size_t(w * 3), 3,
                                         1, self.out, 1024, ctypes.byref(self.count))
        if status != 0:
            raise SystemExit(f"edgedet_detect: {self.lib.edgedet_last_error().decode()}")
        return self.count.value


def _frame() -> np.ndarray:
    rng = np.random.default_rng(0)
    return cv2.resize(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8), (640, 480), interpolation=cv2.INTER_LINEAR)


CPP, PYTHON, BACKEND = "C++ (C API) end to end", "Python end to end", "Python backend only"


def _host(rounds: list[dict]) -> list[float]:
    """Host ms per image (preprocess + postprocess) of each round of ``edgedet-cpp bench`` or ``runtime.bench``."""
    return [r["preprocess_ms"] + r["postprocess_ms"] for r in rounds]


def _overhead(cpp_rounds: list[dict]) -> list[float]:
    """The C++ detect() call over its backend call, per round."""
    return [r["e2e_mean_ms"] / r["mean_ms"] for r in cpp_rounds]


def markdown(label: str, e2e: Timings, cpp_rounds: list[dict], py_rounds: list[dict]) -> str:
    """docs/performance.md's "C++ runtime against the Python runtime" table, one model's row: the interleaved end
    to end ms and their ratio, the host ms of the bench rounds (medians), and the C++ call over its backend call
    to three decimals (it is close to 1)."""
    return markdown_table(
        ["model", "C++ end to end (C API)", "Python end to end", "Python backend only", "C++ / Python end to end",
         "C++ host (pre + post)", "Python host", "C++ end to end / its backend call"],
        [[label, *(f"{e2e.median_ms(k):.2f} ms" for k in (CPP, PYTHON, BACKEND)), e2e.ratio_text(CPP, PYTHON),
          f"{statistics.median(_host(cpp_rounds)):.3f} ms", f"{statistics.median(_host(py_rounds)):.3f} ms",
          ratio(_overhead(cpp_rounds), 3)]])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ssdlite320", help="zoo model (random weights) when --weights is not given")
    ap.add_argument("--weights", help="an edgedet checkpoint to export instead")
    ap.add_argument("--build", default="build/cpp", help="the CMake build folder of runtime/cpp")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--markdown", action="store_true", help="print markdown tables (for docs/performance.md)")
    args = ap.parse_args()
    build = Path(args.build)
    lib, cli = build / "libedgedet.so", build / "edgedet-cpp"
    if not lib.is_file() or not cli.is_file():
        raise SystemExit(f"no C++ build in {build}: cmake -S runtime/cpp -B {build} && cmake --build {build} -j")
    with tempfile.TemporaryDirectory() as tmp:
        res = export_model(ExportOptions(model=None if args.weights else args.model, weights=args.weights or "none",
                                         out_dir=str(Path(tmp) / "export")))
        engine = Path(res.artifacts["fp32"])
        py = Detector(engine, backend="openvino", threads=args.threads)
        c = CDetector(lib, engine, args.threads)
        rgb = _frame()
        buffer = np.zeros((1, *py.input_size, 3), np.uint8)
        py.raw(buffer)
        assert c(rgb) == len(py(rgb)), "the C++ and Python Detectors disagree on this frame"
        e2e = interleave({CPP: lambda: c(rgb), PYTHON: lambda: py(rgb), BACKEND: lambda: py.raw(buffer)},
                         rounds=args.rounds, iters=20)

        cpp_rounds, py_rounds = [], []
        for _ in range(args.rounds):
            proc = subprocess.run([str(cli), "bench", "--engine", str(engine), "--backend", "openvino", "--threads",
                                   str(args.threads), "--iters", "50", "--warmup", "5", "--json", "-"],
                                  capture_output=True, text=True, check=True)
            cpp_rounds.append(json.loads(proc.stdout))
            py_rounds.append(benchmark(py, iters=50, warmup=5).to_dict())

    name = res.metadata["model"]
    host_ratio = f"Python host / C++ host: {ratio([p / q for p, q in zip(_host(py_rounds), _host(cpp_rounds))])}"
    if args.markdown:  # the table, then the line the docs quote below it
        label = f"{name}, the demo's model" if args.weights else name
        print(markdown(f"{label} ({py.input_size[0]}×{py.input_size[1]})", e2e, cpp_rounds, py_rounds))
        print(f"\n{host_ratio}")
        return
    console = Console(width=200)
    table = Table(title=f"{name} {py.input_size[0]}×{py.input_size[1]}, OpenVINO FP32, {args.threads} threads, "
                        f"640×480 frame, {args.rounds} interleaved rounds: ms per image")
    for col in ("variant", "ms (median of rounds)", "vs Python backend only"):
        table.add_column(col, justify="right")
    for k in e2e.rounds:
        table.add_row(k, f"{e2e.median_ms(k):.3f}", e2e.ratio_text(k, BACKEND))
    console.print(table)
    console.print(f"C++ end to end vs Python end to end: {e2e.ratio_text(CPP, PYTHON)}")

    host = Table(title=f"{name}: host work per image inside detect() (edgedet-cpp bench / edgedet.runtime.bench, "
                       f"{args.rounds} alternating rounds of 50 calls)")
    for col in ("", "preprocess ms", "postprocess ms", "host ms", "backend ms", "end to end / backend"):
        host.add_column(col, justify="right")
    med = lambda rows, key: statistics.median(r[key] for r in rows)  # noqa: E731
    host.add_row("C++", f"{med(cpp_rounds, 'preprocess_ms'):.3f}", f"{med(cpp_rounds, 'postprocess_ms'):.4f}",
                 f"{statistics.median(_host(cpp_rounds)):.3f}", f"{med(cpp_rounds, 'mean_ms'):.3f}",
                 ratio(_overhead(cpp_rounds), 3))
    host.add_row("Python", f"{med(py_rounds, 'preprocess_ms'):.3f}", f"{med(py_rounds, 'postprocess_ms'):.4f}",
                 f"{statistics.median(_host(py_rounds)):.3f}", f"{med(py_rounds, 'mean_ms'):.3f}", "")
    console.print(host)
    console.print(host_ratio)


if __name__ == "__main__":
    sys.exit(main())
