"""course.threads: torch and BLAS held to one thread count, and both restored."""

import os

import pytest
import torch

from course.threads import all_threads, blas_threads, same_threads, thread_counts


@pytest.mark.parametrize("n", sorted({1, all_threads()}))
def test_same_threads_sets_both_pools_and_restores_them(n):
    before = thread_counts()
    with same_threads(n) as counts:
        assert counts == {"torch": n, "blas": n}, f"asked for {n} threads each, got {counts}"
        assert torch.get_num_threads() == n, "torch's pool is not at the asked count"
        assert blas_threads() == n, "NumPy's BLAS pool is not at the asked count"
    assert thread_counts() == before, f"pools not restored: {thread_counts()} != {before}"


def test_same_threads_restores_after_an_error():
    before = thread_counts()
    with pytest.raises(KeyError), same_threads(1):
        raise KeyError("inside")
    assert thread_counts() == before, "an error inside left the pools changed"


def test_same_threads_refuses_zero():
    with pytest.raises(ValueError, match="at least one thread"), same_threads(0):
        pass


def test_side_by_side_runs_wait_passively_unless_told_otherwise(monkeypatch):
    from course.book import SIDE_BY_SIDE_ENV, run_side_by_side

    environ = {}
    monkeypatch.setattr(os, "environ", environ)
    run_side_by_side()
    expected = {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_THREAD_TIMEOUT": "4"}
    assert environ == SIDE_BY_SIDE_ENV == expected
    environ["OMP_WAIT_POLICY"] = "ACTIVE"
    run_side_by_side()
    assert environ == expected | {"OMP_WAIT_POLICY": "ACTIVE"}


def test_the_test_run_waits_passively():
    """pytest (tests/nbcollect.py) set it before its workers and kernels started (to
    PASSIVE, unless it was set already)."""
    assert {"OMP_WAIT_POLICY", "OPENBLAS_THREAD_TIMEOUT"} <= set(os.environ)
