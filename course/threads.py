"""Hold torch and NumPy's BLAS to the same number of threads, so that a speed ratio is fair.

torch keeps its own thread pool (`torch.set_num_threads`); NumPy's matrix products run on
OpenBLAS, whose pool is separate and uses every core unless told otherwise. A ratio of the
two timed at different thread counts compares the machines' cores, not the code.
`same_threads(n)` sets both pools to `n` and puts both back afterwards.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from threadpoolctl import threadpool_info, threadpool_limits


def all_threads() -> int:
    """The number of cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def blas_threads() -> int:
    """The thread count of NumPy's BLAS (the largest, if several BLAS libraries are loaded)."""
    pools = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
    return max(pools, default=1)


def thread_counts() -> dict[str, int]:
    """torch's and BLAS's current thread counts, as recorded beside a measurement."""
    return {"torch": torch.get_num_threads(), "blas": blas_threads()}


@contextmanager
def same_threads(n: int) -> Iterator[dict[str, int]]:
    """Run the body with torch and BLAS both on `n` threads; restore both afterwards.

    Yields the counts as they were set, so they can be stored with the results.
    """
    if n < 1:
        raise ValueError(f"same_threads needs at least one thread, got {n}")
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(limits=n, user_api="blas"):
            counts = thread_counts()
            if counts != {"torch": n, "blas": n}:
                raise RuntimeError(f"could not hold both pools to {n} threads: {counts}")
            yield counts
    finally:
        torch.set_num_threads(before)
