"""`make bench`: measure what the course promises about speed.

Prints one table and writes it as JSON to ``_build/bench/bench.json``. Timings never go
into tests (machines are noisy); they go here, where anyone can rerun and compare. Each
figure is the median of several runs, with min and max, so the noise is visible; a
figure measured once (a cold build takes minutes) says so with ``n=1``.

    python tools/bench.py                 # book, notebooks, chapter 2, mini-autograd
    python tools/bench.py --with-test     # also the wall time of `make test` (long)
    python tools/bench.py --only engine   # one section
"""

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "_build" / "bench"
sys.path.insert(0, str(ROOT))


def stats(samples: list[float]) -> dict:
    """Median, min and max of a list of measurements."""
    return {
        "median": statistics.median(samples),
        "min": min(samples),
        "max": max(samples),
        "n": len(samples),
    }


def repeat(fn: Callable[[], float], runs: int) -> dict:
    """Call ``fn`` (which returns one measurement) ``runs`` times."""
    return stats([fn() for _ in range(runs)])


def wall(command: list[str]) -> float:
    """Seconds a shell command takes; it must succeed."""
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def bench_book(runs: int, with_test: bool) -> dict:
    """Cold and warm `make book`, each notebook's execution time, optionally `make test`."""
    subprocess.run(["rm", "-rf", "_build/.jupyter_cache", "_build/html"], cwd=ROOT, check=True)
    results = {"cold make book (s)": stats([wall(["make", "book"])])}
    results["warm make book (s)"] = repeat(lambda: wall(["make", "book"]), runs)
    from jupyter_cache import get_cache

    for record in sorted(
        get_cache(ROOT / "_build" / ".jupyter_cache").list_cache_records(), key=lambda r: r.uri
    ):
        name = Path(record.uri).relative_to(ROOT)
        results[f"execute {name} (s)"] = stats([record.data["execution_seconds"]])
    if with_test:
        results["make test (s)"] = stats([wall(["make", "test"])])
    return results


def matmul_gflops(runs: int, dtype=torch.float32, n: int = 2048) -> dict:
    """This machine's matmul throughput: the FLOP floor that training is compared with."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b  # warm up

    def once() -> float:
        start = time.perf_counter()
        a @ b
        return 2 * n**3 / (time.perf_counter() - start) / 1e9

    return repeat(once, runs)


SECTIONS: dict[str, Callable[[argparse.Namespace], dict]] = {
    "book": lambda args: bench_book(args.runs, args.with_test),
}


def table(results: dict[str, dict]) -> str:
    lines = [f"{'measurement':<58} {'median':>12} {'min':>12} {'max':>12} {'n':>3}"]
    for section, figures in results.items():
        lines.append(f"[{section}]")
        for name, s in figures.items():
            cells = " ".join(f"{s[k]:>12,.4g}" for k in ("median", "min", "max"))
            lines.append(f"  {name:<56} {cells} {s['n']:>3}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="repetitions per figure")
    parser.add_argument("--with-test", action="store_true", help="also time `make test`")
    parser.add_argument("--only", choices=sorted(SECTIONS), action="append")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    results = {name: SECTIONS[name](args) for name in args.only or SECTIONS}
    report = table(results)
    print(report)
    OUT.mkdir(parents=True, exist_ok=True)
    meta = {
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpus": torch.get_num_threads(),
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    (OUT / "bench.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    print(f"written to {OUT / 'bench.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
