"""Load test of an edgedet repository on Triton: N concurrent clients, dynamic batching on and off.

    pip install --no-deps nvidia-pytriton==0.5.14
    python benchmarks/serve_load.py --weights runs/demo/train/best.pt      # the demo's model
    python benchmarks/serve_load.py --model ssdlite320 --requests 200
    python benchmarks/serve_load.py --weights runs/demo/train/best.pt --markdown   # docs/performance.md's table

Two servers run side by side on loopback ports, one repository each, from the same dynamic-batch export: its
end-to-end model with dynamic batching (``--queue-delay-us``) and without. For each client count the two are
measured alternately, round by round. Every answer is checked against a local Detector on the same image (same
number of boxes, same labels, boxes within 0.5 px, scores within 1e-3): a lost or wrong answer is counted, never ignored.
Then the batching server takes ``--memory-requests`` more requests while the resident memory of the server and
its backend processes is sampled.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _markdown import ratio  # noqa: E402
from _markdown import table as markdown_table  # noqa: E402

COLUMNS = ("clients", "configuration", "throughput req/s", "p50 ms", "p99 ms", "errors", "wrong")


@dataclass
class Load:
    """One load run: what came back, and how fast."""

    clients: int
    requests: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    wrong: int = 0

    @property
    def throughput(self) -> float:
        return len(self.latencies_ms) / self.seconds if self.seconds else 0.0

    def p(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")


def expected_answers(engine: Path, images: list[np.ndarray]) -> list:
    from edgedet.runtime import Detector

    det = Detector(engine, backend="openvino")
    return [det(im) for im in images]


def encode(images: list[np.ndarray]) -> list[np.ndarray]:
    """PNG bytes as UINT8 [1, n]: what the end-to-end model takes."""
    import cv2

    return [cv2.imencode(".png", cv2.cvtColor(im, cv2.COLOR_RGB2BGR))[1].reshape(1, -1) for im in images]


def _same(result, want) -> bool:
    k = int(result.as_numpy("num_dets")[0, 0])
    if k != len(want):
        return False
    boxes, scores = result.as_numpy("boxes")[0, :k], result.as_numpy("scores")[0, :k]
    labels = result.as_numpy("labels")[0, :k]
    return bool((labels == want.labels).all() and np.abs(boxes - want.boxes).max(initial=0) <= 0.5
                and np.abs(scores - want.scores).max(initial=0) <= 1e-3)


def run_load(grpc_address: str, model: str, payloads: list[np.ndarray], expected: list, *, clients: int,
             requests: int, timeout_s: float = 120.0) -> Load:
    """``requests`` requests in all from ``clients`` threads (one gRPC client each), images in turn; bounded in
    count and by ``timeout_s`` per request."""
    import tritonclient.grpc as g

    out = Load(clients, requests, 0.0)
    lock = threading.Lock()
    counter = iter(range(requests))

    def worker() -> None:
        client = g.InferenceServerClient(grpc_address)
        outputs = [g.InferRequestedOutput(n) for n in ("num_dets", "boxes", "scores", "labels")]
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            data = payloads[i % len(payloads)]
            inp = g.InferInput("image", list(data.shape), "UINT8")
            inp.set_data_from_numpy(data)
            t0 = time.perf_counter()
            try:
                result = client.infer(model, [inp], outputs=outputs, client_timeout=timeout_s)
            except Exception as e:  # noqa: BLE001 - every failure is counted and reported
                with lock:
                    out.errors.append(str(e).splitlines()[0][:200])
                continue
            ms = (time.perf_counter() - t0) * 1e3
            ok = _same(result, expected[i % len(expected)])
            with lock:
                out.latencies_ms.append(ms)
                out.wrong += not ok
        client.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    start = time.perf_counter()
    deadline = time.monotonic() + timeout_s + requests * 1.0  # one bound for the whole run: a second a request at most
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    out.seconds = time.perf_counter() - start
    if any(t.is_alive() for t in threads):
        out.errors.append("a client thread did not finish in time")
    return out


def memory_growth(server, grpc_address: str, model: str, payloads: list, expected: list, requests: int) -> tuple[int, int, Load]:
    """Resident memory of the server and its backend processes before and after ``requests`` more requests."""
    run_load(grpc_address, model, payloads, expected, clients=4, requests=100)  # warm: allocator pools settle
    before = server.rss_bytes()
    load = run_load(grpc_address, model, payloads, expected, clients=4, requests=requests)
    return before, server.rss_bytes(), load


def result_rows(loads: dict[tuple[str, int], list[Load]]) -> list[list[str]]:
    """One row per client count and configuration (fewest clients first, batching before no batching): medians
    over the rounds of throughput, p50 and p99; errors and wrong answers summed over them."""
    rows = []
    for (key, clients), runs in sorted(loads.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        throughput, p50, p99 = (statistics.median(v) for v in zip(*[(r.throughput, r.p(50), r.p(99)) for r in runs]))
        rows.append([str(clients), key, f"{throughput:.1f}", f"{p50:.2f}", f"{p99:.2f}",
                     str(sum(len(r.errors) for r in runs)), str(sum(r.wrong for r in runs))])
    return rows


def markdown(loads: dict[tuple[str, int], list[Load]], queue_delay_us: int) -> str:
    """docs/performance.md's "Serving on Triton: load" table: ``result_rows``, the first batching row naming the
    queue delay (every batching row has the same one)."""
    rows = result_rows(loads)
    first = next((r for r in rows if r[1] == "batching"), None)
    if first is not None:
        first[1] = f"batching ({queue_delay_us} µs)"
    return markdown_table(COLUMNS, rows)


def main() -> int:
    from rich.console import Console
    from rich.table import Table

    from edgedet.data.synth import make_synthetic_dataset
    from edgedet.data.imageio import read_image
    from edgedet.export.onnx_export import ExportOptions, export_model
    from edgedet.runtime.triton.repository import write_repository
    from edgedet.runtime.triton.server import TritonServer, free_port

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ssdlite_tiny", help="zoo model (random weights) when --weights is not given")
    ap.add_argument("--weights", help="an edgedet checkpoint to export instead")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--requests", type=int, default=300, help="requests per client count and configuration")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--queue-delay-us", type=int, default=200)
    ap.add_argument("--memory-requests", type=int, default=2000)
    ap.add_argument("--markdown", action="store_true", help="print markdown tables (for docs/performance.md)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        synth = make_synthetic_dataset(tmp / "data", images=24)
        images = [read_image(p) for p in sorted(synth.images_dir.iterdir())[:16]]
        res = export_model(ExportOptions(model=None if args.weights else args.model, weights=args.weights or "none",
                                         dynamic_batch=8, out_dir=str(tmp / "export")))
        engine = Path(res.artifacts["fp32"])
        expected, payloads = expected_answers(engine, images), encode(images)
        name = f"{engine.stem}_e2e"
        repos = {"batching": tmp / "on", "no batching": tmp / "off"}
        write_repository([engine], repos["batching"], kind="cpu", queue_delay_us=args.queue_delay_us)
        write_repository([engine], repos["no batching"], kind="cpu", batching=False)
        servers = {k: TritonServer(r, http_port=free_port(), grpc_port=free_port(), models=[name]) for k, r in repos.items()}
        try:
            loads: dict[tuple[str, int], list[Load]] = {}
            for _ in range(args.rounds):
                for clients in args.clients:
                    for key, server in servers.items():
                        load = run_load(f"127.0.0.1:{server.grpc_port}", name, payloads, expected, clients=clients,
                                        requests=args.requests)
                        loads.setdefault((key, clients), []).append(load)
            before, after, mem = memory_growth(servers["batching"], f"127.0.0.1:{servers['batching'].grpc_port}", name,
                                               payloads, expected, args.memory_requests)
        finally:
            for s in servers.values():
                s.stop()

    console = Console(width=200)
    if args.markdown:  # the table, then (as plain lines) the figures the docs quote below it
        print(markdown(loads, args.queue_delay_us) + "\n")
    else:
        table = Table(title=f"{res.metadata['model']} on Triton (CPU, Python backend, OpenVINO), {args.requests} "
                            f"requests per cell, {args.rounds} alternating rounds (medians), queue delay "
                            f"{args.queue_delay_us} µs")
        for col in COLUMNS:
            table.add_column(col, justify="right")
        for row in result_rows(loads):
            table.add_row(*row)
        console.print(table)
    lo, hi = min(args.clients), max(args.clients)
    gain = [a.throughput / b.throughput for a, b in zip(loads[("batching", hi)], loads[("batching", lo)])]
    p50 = [a.p(50) / b.p(50) for a, b in zip(loads[("batching", lo)], loads[("no batching", lo)])]
    console.print(f"batching: {hi} clients / {lo} client throughput {ratio(gain)}; "
                  f"{lo}-client p50, batching / no batching {ratio(p50)}")
    console.print(f"memory over {args.memory_requests} requests: {before / 2**20:.0f} → {after / 2**20:.0f} MiB "
                  f"({(after - before) / 2**20:+.1f} MiB); errors {len(mem.errors)}, wrong {mem.wrong}")
    bad = sum(len(r.errors) + r.wrong for runs in loads.values() for r in runs) + len(mem.errors) + mem.wrong
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
