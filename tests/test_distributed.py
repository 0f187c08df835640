"""course.distributed: the ranks compute what one process computes, and always clean up.

The ranks are forked here (fast: the test process has imported torch already); the
chapter starts them with spawn, and the torchrun test runs the module as a script.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from course import distributed as D

ROOT = Path(__file__).resolve().parent.parent


def fork_launch(worker, *args, timeout=60.0):
    return D.launch(worker, 2, *args, timeout=timeout, start_method="fork")


def test_collectives_give_every_rank_the_same_result():
    for result in fork_launch(D.collectives):
        assert torch.equal(result["all_reduce"], torch.tensor([3.0, 10.0])), result
        assert torch.equal(result["broadcast"], torch.tensor([42.0, 7.0])), result
        assert torch.equal(result["all_gather"], torch.tensor([0.0, 1.0])), result


def test_gradients_by_hand_equal_one_process_on_the_whole_batch():
    grads = fork_launch(D.grads_by_hand, 8)
    model = D.make_model()
    D.loss_fn(model, *D.make_batch(8)).backward()
    for name, p in model.named_parameters():
        assert torch.equal(grads[0][name], grads[1][name]), f"{name} differs between ranks"
        assert torch.allclose(grads[0][name], p.grad, rtol=1e-12, atol=1e-15), name


def test_ddp_training_equals_single_process_training():
    trained = fork_launch(D.train_ddp, 4, 16)
    single = D.train_single(4, 16)
    for name, p in single.items():
        assert torch.equal(trained[0][name], trained[1][name]), f"{name} differs between ranks"
        assert torch.allclose(trained[0][name], p, rtol=1e-12, atol=1e-12), name


def test_shard_of_refuses_an_uneven_split():
    with pytest.raises(ValueError, match="does not split into 3 equal shards"):
        D.shard_of(torch.arange(8), 0, 3)


def test_world_size_must_be_a_positive_int():
    for bad in (0, -1, 2.0, "2"):
        with pytest.raises(ValueError, match="world_size must be a positive int"):
            D.Ranks(bad)


def assert_cleaned_up(ranks):
    assert not any(p.is_alive() for p in ranks.processes), "a rank is still running"
    assert D.port_is_free(ranks.port), f"port {ranks.port} is still taken"


def test_a_failing_rank_makes_the_other_fail_fast_with_a_clear_error():
    """Rank 1 raises; rank 0, waiting in all_reduce, fails at once, not after the timeout."""
    timeout = 30.0
    ranks = D.Ranks(2, timeout=timeout, start_method="fork", first=(D.fail_on_rank, (1,)))
    start = time.monotonic()
    with pytest.raises(D.RankError) as error:
        ranks.collect()
    elapsed = time.monotonic() - start
    message = str(error.value)
    assert "2 of 2 ranks failed" in message, message
    assert "--- rank 1:" in message, message
    assert "rank 1 failed on purpose" in message, message
    assert "--- rank 0:" in message, message
    assert "all_reduce" in message, message
    assert elapsed < timeout / 2, f"took {elapsed:.1f} s: the waiting rank hung"
    assert_cleaned_up(ranks)


def test_a_hanging_rank_is_reported_after_the_timeout():
    """Rank 1 never joins the all_reduce: rank 0's collective times out, rank 1 is stopped."""
    timeout = 4.0
    ranks = D.Ranks(2, timeout=timeout, start_method="fork", first=(D.fail_on_rank, (1, "hang")))
    start = time.monotonic()
    with pytest.raises(D.RankError) as error:
        ranks.collect()
    elapsed = time.monotonic() - start
    message = str(error.value)
    assert "--- rank 0:" in message, message
    assert "all_reduce" in message, message
    assert f"--- rank 1: still running {D.GRACE:g} s after rank(s) [0] failed" in message
    assert elapsed < timeout + D.GRACE + 10, f"took {elapsed:.1f} s"
    assert_cleaned_up(ranks)


def test_ranks_run_many_tasks_then_close_cleanly():
    with D.Ranks(2, start_method="fork") as ranks:
        first = ranks.run(D.collectives)
        # Every rank has joined the group once a task has answered, so rank 0's store
        # listens now (asking before the first task races with the ranks' start-up).
        assert not D.port_is_free(ranks.port), "rank 0's store does not listen"
        assert first[1]["broadcast"].tolist() == [42.0, 7.0]
        assert ranks.run(D.collectives)[0]["all_reduce"].tolist() == [3.0, 10.0]
        assert len(ranks.run(D.grads_by_hand, 4)) == 2
    assert [p.exitcode for p in ranks.processes] == [0, 0]
    assert_cleaned_up(ranks)
    ranks.close()  # closing twice is harmless


def test_the_module_runs_under_torchrun():
    torchrun = Path(sys.executable).parent / "torchrun"
    command = [str(torchrun), "--standalone", "--nproc-per-node", "2", "-m", "course.distributed"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=180, env=env, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    expected = "world size 2, localhost: ranks identical: True, equal to one process: True"
    assert expected in done.stdout, done.stdout + done.stderr[-3000:]


ORPHAN_SCRIPT = """
import os, sys
from course import distributed as D

if __name__ == "__main__":
    ranks = D.Ranks(2)
    ranks.run(D.collectives)
    print(*(p.pid for p in ranks.processes), flush=True)
    os._exit(0)  # die without closing the ranks, like a killed kernel
"""


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, ended but not yet reaped, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[-1][0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc (Linux)")
def test_ranks_stop_by_themselves_when_their_launcher_dies():
    done = subprocess.run(
        [sys.executable, "-c", ORPHAN_SCRIPT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    pids = [int(pid) for pid in done.stdout.split()]
    assert len(pids) == 2, done.stdout + done.stderr
    deadline = time.monotonic() + 15
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(alive(pid) for pid in pids), f"orphaned ranks {pids} still run"
