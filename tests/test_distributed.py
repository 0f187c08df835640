"""course.distributed: the ranks compute what one process computes, and always clean up.

The ranks are forked here (fast: the test process has imported torch already); the
chapter starts them with spawn, and the torchrun test runs the module as a script.
"""

import faulthandler
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

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
        assert (grads[0][name] - p.grad).abs().max() < 1e-16, name


def test_ddp_training_equals_single_process_training():
    trained = fork_launch(D.train_ddp, 4, 16)
    single = D.train_single(4, 16)
    for name, p in single.items():
        assert torch.equal(trained[0][name], trained[1][name]), f"{name} differs between ranks"
        assert (trained[0][name] - p).abs().max() < 1e-15, name


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
    """Rank 1 never joins the all_reduce: rank 0's collective times out, rank 1 is stopped
    at once (it can no longer complete), and the message says which call it skipped."""
    timeout = 4.0
    ranks = D.Ranks(2, timeout=timeout, start_method="fork", first=(D.fail_on_rank, (1, "hang")))
    start = time.monotonic()
    with pytest.raises(D.RankError) as error:
        ranks.collect()
    elapsed = time.monotonic() - start
    message = str(error.value)
    assert message.startswith(
        "rank 1 never called all_reduce: every rank must call every collective "
        "(rank 0 waited in it)\n"
    ), message
    assert "--- rank 0:" in message, message
    assert "--- rank 1: stopped: the ranks' collectives could no longer all complete" in message
    assert error.value.waited == (0,)
    assert elapsed < timeout + D.GRACE + 10, f"took {elapsed:.1f} s"
    assert_cleaned_up(ranks)


@pytest.mark.parametrize(
    ("world_size", "skipping", "expected"),
    [
        (
            2,
            1,
            "rank 1 never called all_reduce: every rank must call every collective "
            "(rank 0 waits in it)",
        ),
        (
            3,
            0,
            "rank 0 never called all_reduce: every rank must call every collective "
            "(ranks 1 and 2 wait in it)",
        ),
    ],
)
def test_a_rank_that_skips_a_collective_is_named_at_once(world_size, skipping, expected):
    """The skipping rank finishes its task: the others can never finish theirs. Said in
    plain words within seconds, however long the collectives' timeout."""
    ranks = D.Ranks(
        world_size, timeout=60, start_method="fork", first=(D.fail_on_rank, (skipping, "skip"))
    )
    start = time.monotonic()
    with pytest.raises(D.RankError) as error:
        ranks.collect()
    elapsed = time.monotonic() - start
    assert error.value.diagnosis == expected, str(error.value)
    assert str(error.value).startswith(expected), str(error.value)
    assert set(error.value.results) == {skipping}, "the skipping rank answered"
    # Seconds on an idle machine; half the timeout leaves room for a loaded one.
    assert elapsed < 30, f"took {elapsed:.1f} s: it waited for the 60 s timeout"
    assert_cleaned_up(ranks)


def skip_with_a_late_rank(rank, world_size):
    """Rank 0 skips the all_reduce; rank 2 enters it a second after rank 1."""
    if rank == 2:
        time.sleep(1.0)
    D.fail_on_rank(rank, world_size, 0, "skip")


def test_a_rank_a_moment_behind_is_named_among_those_that_wait():
    """The skip is seen while rank 2 is still on its way into the collective: the message
    waits for it (up to SETTLE seconds) rather than name rank 1 alone."""
    ranks = D.Ranks(3, timeout=60, start_method="fork", first=(skip_with_a_late_rank, ()))
    with pytest.raises(D.RankError) as error:
        ranks.collect()
    assert error.value.diagnosis == (
        "rank 0 never called all_reduce: every rank must call every collective "
        "(ranks 1 and 2 wait in it)"
    ), str(error.value)
    assert_cleaned_up(ranks)


def mismatched(rank, world_size, kind):
    """Rank 1 calls another collective, or all_reduce on another size, than rank 0.

    gloo aborts a rank on a size mismatch; its fault handler (pytest's, inherited under
    fork) would print this test process's stack, so it is switched off here.
    """
    faulthandler.disable()
    tensor = torch.ones(4 + (rank if kind == "size" else 0))
    if kind == "broadcast" and rank == 1:
        dist.broadcast(tensor, src=0)
    else:
        dist.all_reduce(tensor)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (
            "broadcast",
            "rank 0 called all_reduce where rank 1 called broadcast: every rank must "
            "call the same collectives in the same order",
        ),
        (
            "size",
            "rank 0 called all_reduce on 4 numbers where rank 1 called it on 5: every rank "
            "must pass a tensor of the same size",
        ),
    ],
)
def test_ranks_that_call_different_collectives_are_named_at_once(kind, expected):
    ranks = D.Ranks(2, timeout=60, start_method="fork", first=(mismatched, (kind,)))
    start = time.monotonic()
    with pytest.raises(D.RankError) as error:
        ranks.collect()
    assert error.value.diagnosis == expected, str(error.value)
    assert time.monotonic() - start < 30, "it waited for the 60 s timeout"
    assert_cleaned_up(ranks)


def calls_every_way(rank, world_size):
    """How many collectives the log counts after each way of calling one."""
    from torch.distributed import all_reduce

    counts = [D.collectives_called()]
    dist.all_reduce(torch.ones(2))
    counts.append(D.collectives_called())
    all_reduce(torch.ones(2))  # imported by name: the log sits below the function
    counts.append(D.collectives_called())
    dist.all_reduce(torch.ones(2), async_op=True).wait()
    counts.append(D.collectives_called())
    if rank == 0:  # point-to-point: not a collective, not counted
        dist.send(torch.ones(1), dst=1)
    else:
        dist.recv(torch.ones(1), src=0)
    counts.append(D.collectives_called())
    torch.nn.parallel.DistributedDataParallel(D.make_model())  # DDP's own broadcasts
    counts.append(D.collectives_called())
    return counts


def test_the_call_log_counts_every_collective_however_it_is_called():
    for counts in fork_launch(calls_every_way):
        start = counts[0]
        assert [c - start for c in counts[:5]] == [0, 1, 2, 3, 3], counts
        assert counts[5] > counts[4], "DDP's collectives are counted too"


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
    expected = (
        "world size 2, localhost: ranks identical: True, equal to one process within 1e-15: True"
    )
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
