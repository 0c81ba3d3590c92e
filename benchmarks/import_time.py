"""How long ``from edgedet.runtime import Detector`` takes in a fresh interpreter (what an application pays at
start-up), best and median of N runs. A benchmark, not a test: the figure depends on the machine's load.

    python benchmarks/import_time.py [--runs 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

CODE = "import time; t=time.perf_counter(); from edgedet.runtime import Detector; print(time.perf_counter()-t)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    runs = ap.parse_args().runs
    times = [float(subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True).stdout)
             for _ in range(runs)]
    print(f"from edgedet.runtime import Detector: best {min(times) * 1000:.0f} ms, "
          f"median {statistics.median(times) * 1000:.0f} ms over {runs} runs")


if __name__ == "__main__":
    main()
