"""`make bench`: measure what the course promises about speed.

Prints one table and writes it as JSON to ``_build/bench/bench.json``. Timings never go
into tests (machines are noisy); they go here, where anyone can rerun and compare. Each
figure is the median of several runs, with min and max, so the noise is visible; a
figure measured once (a cold build takes minutes) says so with ``n=1``.

    python tools/bench.py                 # book, notebooks, chapter 2, mini-autograd
    python tools/bench.py --with-test     # also the wall time of a cold `make test` (long)
    python tools/bench.py --only test --before 881f52b   # cold `make test` then and now
    python tools/bench.py --only engine   # one section
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from course.threads import all_threads, same_threads

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "_build" / "bench"
# What a cold build starts without: the build's outputs, the executed-notebook cache too.
COLD = ["_build/.jupyter_cache", "_build/.doctrees", "_build/html", "_build/jupyter_execute"]


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


def wall(command: list[str], before=None) -> float:
    """Seconds a shell command takes (after `before()`, untimed); it must succeed."""
    if before is not None:
        before()
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def pretend_changed(module: str) -> None:
    """Make `tools/execute.py` see `module` as changed, without editing it: its hash in
    the execution record is altered and the up-to-date stamp removed. The notebooks that
    import it are then executed and read again, as after a real edit."""
    import execute  # tools/execute.py, beside this script (on sys.path when run as one)

    record = json.loads(execute.DEPENDENCIES.read_text())
    for entry in record.values():
        if module in entry["files"]:
            entry["files"][module] = "edited"
    execute.DEPENDENCIES.write_text(json.dumps(record))
    execute.STAMP.unlink(missing_ok=True)


def bench_book(runs: int) -> dict:
    """Cold and warm `make book`, and each notebook's execution time."""
    subprocess.run(["rm", "-rf", *COLD], cwd=ROOT, check=True)
    results = {"cold make book (s)": stats([wall(["make", "book"])])}
    results["warm make book (s)"] = repeat(lambda: wall(["make", "book"]), runs)
    results["make book after an edit of course/checks/forward.py (s)"] = repeat(
        lambda: wall(["make", "book"], before=lambda: pretend_changed("course/checks/forward.py")),
        runs,
    )
    from jupyter_cache import get_cache

    for record in sorted(
        get_cache(ROOT / "_build" / ".jupyter_cache").list_cache_records(), key=lambda r: r.uri
    ):
        name = Path(record.uri).relative_to(ROOT)
        results[f"execute {name} (s)"] = stats([record.data["execution_seconds"]])
    return results


def cold_make_test(folder: Path, log: Path) -> tuple[float, int]:
    """Seconds and exit status of a cold `make test` in `folder` (`.venv` present, the
    build's outputs, the executed-notebook cache included, removed first); its output goes
    to `log`."""
    subprocess.run(["rm", "-rf", *COLD, "_build/screenshots"], cwd=folder, check=True)
    # The venv is this checkout's: make must not reinstall it, and the notebooks' kernels
    # must import `course` from `folder`, not from the checkout the venv was installed from
    # (PYTHONPATH; with it, the test that `course` is missing outside Colab fails there).
    command = ["make", "-o", ".venv/.installed", "-o", ".venv/.installed-test", "test"]
    env = os.environ | ({"PYTHONPATH": str(folder)} if folder != ROOT else {})
    start = time.perf_counter()
    with log.open("w") as out:
        status = subprocess.run(command, cwd=folder, env=env, stdout=out, stderr=out).returncode
    seconds = time.perf_counter() - start
    if status:
        print(f"make test was red in {folder} (exit {status}): see {log}", file=sys.stderr)
    return seconds, status


def bench_test(before: str | None) -> dict:
    """A cold `make test` of this tree, after one of the commit `before` if given (back to
    back, so that both meet the same machine): the number the issue tracker quotes."""
    results = {}
    OUT.mkdir(parents=True, exist_ok=True)
    if before:
        folder = Path(tempfile.mkdtemp(prefix="course-before-"))
        worktree = ["git", "worktree", "add", "--detach", str(folder), before]
        subprocess.run(worktree, cwd=ROOT, check=True)
        try:
            (folder / ".venv").symlink_to(ROOT / ".venv")
            seconds, status = cold_make_test(folder, OUT / "make-test-before.log")
            red = f", red: see {OUT / 'make-test-before.log'}" if status else ""
            results[f"cold make test at {before}{red} (s)"] = stats([seconds])
        finally:
            remove = ["git", "worktree", "remove", "--force", str(folder)]
            subprocess.run(remove, cwd=ROOT, check=True)
    seconds, status = cold_make_test(ROOT, OUT / "make-test.log")
    red = f", red: see {OUT / 'make-test.log'}" if status else ""
    results[f"cold make test of this tree{red} (s)"] = stats([seconds])
    return results


def bench_check(runs: int) -> dict:
    """`make check` (the loop): with nothing changed, and after an edit of one chapter's
    prose or of one module of course/checks/. Each edit is made, timed and undone; an
    untimed `make check` after it makes the record green again."""
    edits = {
        "a sentence added to chapters/autograd-hooks.md": (
            ROOT / "chapters" / "autograd-hooks.md",
            lambda text: text.rstrip("\n") + "\n\nOne more sentence, for the benchmark.\n",
        ),
        "a comment added to course/checks/tensors.py": (
            ROOT / "course" / "checks" / "tensors.py",
            lambda text: text + "# an edit, for the benchmark\n",
        ),
    }
    wall(["make", "check"])  # a green record to start from
    results = {"make check, nothing changed (s)": repeat(lambda: wall(["make", "check"]), runs)}
    for name, (path, edit) in edits.items():
        original, samples = path.read_text(encoding="utf-8"), []
        for _ in range(runs):
            try:
                path.write_text(edit(original), encoding="utf-8")
                samples.append(wall(["make", "check"]))
            finally:
                path.write_text(original, encoding="utf-8")
                wall(["make", "check"])
        results[f"make check after {name} (s)"] = stats(samples)
    return results


def bench_memory(runs: int) -> dict:
    """Chapter 7: activation checkpointing of a 36-layer MLP, peak memory and time per
    number of segments (one thread; `course.memory.checkpoint_curve`, the chapter's code)."""
    from course.memory import checkpoint_curve

    curves = [checkpoint_curve(repeats=2) for _ in range(runs)]
    results = {}
    plain = curves[0][0]
    for point in curves[0]:
        name = "no checkpoint" if point.segments == 0 else f"{point.segments} segments"
        seconds = [curve[curves[0].index(point)].seconds for curve in curves]
        results[f"{name}: peak memory / without checkpoint"] = stats([point.peak / plain.peak])
        results[f"{name}: FLOP / without checkpoint"] = stats([point.flops / plain.flops])
        results[f"{name}: step time (ms)"] = stats([1000 * t for t in seconds])
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


def mnist_arrays():
    """MNIST as standardised float32 rows and integer labels, via torchvision (offline)."""
    import torchvision

    from course.data import check_mnist

    root = check_mnist()
    sets = [torchvision.datasets.MNIST(root, train=t, download=True) for t in (True, False)]
    return [(s.data, s.targets.numpy()) for s in sets]


def bench_engine(runs: int) -> dict:
    """The reference mini-autograd (from solutions/engine.md) beside torch on the CPU."""
    import contextlib
    import io

    import numpy as np

    from course.checks.engine import compare_step_time
    from course.notebooks import engine

    E = engine()
    (train_images, y_train), (test_images, y_test) = mnist_arrays()
    X_train, X_test = E.standardise(train_images), E.standardise(test_images)

    def new_model(dtype):
        model = E.MLP([784, 128, 10], np.random.default_rng(0), dtype)
        return model, E.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def first_batches(dtype):
        batches = np.arange(20 * 128).reshape(20, 128)
        return [(X_train[b].astype(dtype), y_train[b]) for b in batches]

    results = {}
    # Both engines at the same thread count (torch's pool and NumPy's BLAS): at one
    # thread, and at every core this process may use.
    for threads in sorted({1, all_threads()}):
        ratios = []
        for _ in range(runs):
            with contextlib.redirect_stdout(io.StringIO()):
                ratios.append(
                    compare_step_time(new_model, first_batches, E.cross_entropy, E.Tensor, threads)
                )
        for dtype in ("float32", "float64"):
            name = f"engine step / torch step, {dtype}, {threads} thread(s) each"
            results[name] = {**stats([r[dtype] for r in ratios]), "threads": threads}

    (model, optimizer), batches = new_model(np.float32), first_batches(np.float32)
    threads = 1

    def tensor_step() -> float:
        x, y = batches[0]
        start = time.perf_counter()
        loss = E.cross_entropy(model(E.Tensor(x)), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return (time.perf_counter() - start) / len(x)

    with same_threads(threads):
        per_example = repeat(tensor_step, runs)
        scalar = repeat(lambda: scalar_example_step(E.Value, X_train[0], int(y_train[0])), 3)
    results["tensor engine, one example's step (ms), 1 thread"] = scaled(per_example, 1e3)
    results["scalar engine, one example's step (ms), 1 thread"] = scaled(scalar, 1e3)
    results["scalar / tensor engine, per example"] = stats(
        [scalar["median"] / per_example["median"]]
    )

    start = time.perf_counter()
    rng = np.random.default_rng(0)
    model = E.MLP([784, 128, 10], rng)
    optimizer = E.SGD(model.parameters(), lr=0.05, momentum=0.9)
    with same_threads(all_threads()):
        E.fit(model, optimizer, X_train, y_train, 5, 128, rng)
    seconds = time.perf_counter() - start
    results[f"engine: 5 epochs of MNIST (s), {all_threads()} threads"] = stats([seconds])
    results["engine: MNIST test accuracy (%)"] = stats([100 * E.accuracy(model, X_test, y_test)])
    return results


def step_flops(model, batch_size: int) -> int:
    """The FLOP of one training step (forward and backward) of `model` on MNIST-shaped
    input, as torch's FlopCounterMode counts them: the images need no gradient, so the
    first layer's backward is its weight gradient alone (not "twice the forward")."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(batch_size, 1, 28, 28)
    y = torch.zeros(batch_size, dtype=torch.long)
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.cross_entropy(model(x), y).backward()
    return counter.get_total_flops()


def bench_mnist(runs: int) -> dict:
    """Chapter 2's section at one thread, torch and BLAS alike, as in the chapter."""
    with same_threads(1) as counts:
        return {name: {**s, **{"threads": counts["torch"]}} for name, s in mnist(runs).items()}


def mnist(runs: int, batches_per_run: int = 150) -> dict:
    """Chapter 2's speed lesson: a per-sample DataLoader against tensors in memory.

    Same network as the chapter (784-512-10 MLP, Adam), one thread as in the chapter.
    The FLOP floor is the epoch's floating-point operations as torch's FlopCounterMode
    counts them for one training step (`step_flops`), at this machine's measured matmul
    rate.
    """
    import torchvision
    from torch import nn
    from torchvision import transforms

    from course.data import check_mnist
    from course.mnist import MEAN, STD, batches, to_tensors

    root = check_mnist()
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((MEAN,), (STD,))])
    train_set = torchvision.datasets.MNIST(root, train=True, download=True, transform=transform)
    test_set = torchvision.datasets.MNIST(root, train=False, download=True)

    def net():
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 10))

    def throughput(source) -> float:
        model = net()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        start, seen = time.perf_counter(), 0
        for step, (x, y) in enumerate(source):
            if step == batches_per_run:
                break
            loss = nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seen += len(y)
        return seen / (time.perf_counter() - start)

    generator = torch.Generator().manual_seed(0)
    loader = torch.utils.data.DataLoader(
        train_set, batch_size=64, shuffle=True, generator=generator
    )
    images, labels = to_tensors(train_set)
    per_sample = repeat(lambda: throughput(loader), runs)
    in_memory = repeat(lambda: throughput(batches(images, labels, 64, generator)), runs)
    results = {
        "DataLoader + transforms, batch 64 (examples/s)": per_sample,
        "in memory, batch 64 (examples/s)": in_memory,
        "in memory / DataLoader speed-up": stats([in_memory["median"] / per_sample["median"]]),
    }

    model = net()
    epochs, batch_size = 5, 128
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    steps = epochs * -(-len(labels) // batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps)
    epoch_times = []
    for _ in range(epochs):
        start = time.perf_counter()
        for x, y in batches(images, labels, batch_size, generator):
            loss = nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
        epoch_times.append(time.perf_counter() - start)
    test_images, test_labels = to_tensors(test_set)
    with torch.no_grad():
        correct = (model(test_images).argmax(dim=1) == test_labels).sum().item()
    results["in memory, batch 128: one epoch (s)"] = stats(epoch_times)
    results["in memory, 5 epochs: test accuracy (%)"] = stats([100 * correct / len(test_labels)])
    gflops = matmul_gflops(runs)
    flops_per_epoch = step_flops(net(), batch_size) * len(labels) / batch_size
    floor = flops_per_epoch / (gflops["median"] * 1e9)
    results["FLOP per training step, batch 128 (counted, M)"] = stats(
        [step_flops(net(), batch_size) / 1e6]
    )
    results["matmul rate, 1 thread (GFLOP/s)"] = gflops
    results["epoch time / FLOP floor"] = stats([t / floor for t in epoch_times])
    return results


def bench_forward(runs: int) -> dict:
    """Chapter 5: jacfwd/jacrev time ratios across n/m, and vmap against a loop (1 thread).

    Both at one thread, with the chapter's own code: ``course.figures.forward`` for the
    Jacobians, the cells of chapters/forward.md tagged ``per-sample`` for the gradients.
    """
    from course.figures.forward import best_time, jacobian_timings
    from course.notebooks import load_notebook_module

    shapes = [(8, 512), (64, 64), (512, 8)]
    ratios = {shape: [] for shape in shapes}
    for _ in range(runs):
        for t in jacobian_timings(shapes):
            ratios[(t.n, t.m)].append(t.ratio)
    results = {
        f"jacfwd / jacrev time, n={n} m={m}, 1 thread": stats(r) for (n, m), r in ratios.items()
    }
    chapter = load_notebook_module(ROOT / "chapters" / "forward.md", "per-sample", "forward_ch")
    model, X, y = chapter.make_batch()
    with same_threads(1):
        by_vmap = [best_time(lambda: chapter.per_sample_grads(model, X, y), 1) for _ in range(runs)]
        by_loop = [
            best_time(lambda: chapter.per_sample_grads_loop(model, X, y), 1) for _ in range(runs)
        ]
    results["per-sample grads, 784-512-10, batch 64: vmap (ms)"] = scaled(stats(by_vmap), 1e3)
    results["per-sample grads: loop (ms)"] = scaled(stats(by_loop), 1e3)
    results["per-sample grads: loop / vmap speed-up"] = stats(
        [loop / fast for loop, fast in zip(by_loop, by_vmap, strict=True)]
    )
    return results


def scaled(s: dict, factor: float) -> dict:
    """The figures of `s` multiplied by `factor` (the run count `n` left alone)."""
    return {k: v * factor if k != "n" else v for k, v in s.items()}


def scalar_example_step(Value, x, label: int, hidden: int = 128) -> float:
    """Seconds for one example through a 784-hidden-10 MLP of scalar ``Value``s, with backward.

    Softmax cross-entropy in scalars: loss = log(sum(exp(z))) - z[label].
    """
    import numpy as np

    rng = np.random.default_rng(0)
    w1 = [[Value(w) for w in row] for row in rng.normal(0, 0.03, (hidden, 784))]
    w2 = [[Value(w) for w in row] for row in rng.normal(0, 0.1, (10, hidden))]
    start = time.perf_counter()
    inputs = [float(v) for v in x]
    h = [sum((w * v for w, v in zip(row, inputs, strict=True)), Value(0.0)).relu() for row in w1]
    z = [sum((w * v for w, v in zip(row, h, strict=True)), Value(0.0)) for row in w2]
    loss = sum((zi.exp() for zi in z), Value(0.0)).log() - z[label]
    loss.backward()
    return time.perf_counter() - start


def bench_distributed(runs: int, batch: int = 128, steps: int = 40) -> dict:
    """Chapter 6: Chapter 2's network on global batches of ``batch``, 1 process against 2.

    Two DDP processes (gloo on 127.0.0.1) of one thread each, against one process at one
    thread and at every core: on one machine, threads are the fair competitor.
    """
    from course import distributed

    results = {}
    for threads in sorted({1, all_threads()}):
        one = repeat(lambda t=threads: distributed.single_throughput(batch, steps, t), runs)
        results[f"1 process, {threads} thread(s) (examples/s)"] = {**one, "threads": threads}
    with distributed.Ranks(2) as ranks:
        two = repeat(lambda: ranks.run(distributed.throughput, batch, steps)[0]["examples/s"], runs)
    results["2 DDP processes, 1 thread each (examples/s)"] = {**two, "threads": 1}
    single = results["1 process, 1 thread(s) (examples/s)"]["median"]
    results["2 processes / 1 process at 1 thread"] = stats([two["median"] / single])
    return results


SECTIONS: dict[str, Callable[[argparse.Namespace], dict]] = {
    "book": lambda args: bench_book(args.runs),
    "test": lambda args: bench_test(args.before),
    "check": lambda args: bench_check(args.runs),
    "memory": lambda args: bench_memory(args.runs),
    "mnist": lambda args: bench_mnist(args.runs),
    "engine": lambda args: bench_engine(args.runs),
    "distributed": lambda args: bench_distributed(args.runs),
    "forward": lambda args: bench_forward(args.runs),
}


def number(value: float) -> str:
    """A figure as the table prints it: thousands separated, else four digits."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def table(results: dict[str, dict]) -> str:
    """The results as a text table: one row per figure, median, min, max and runs."""
    lines = [f"{'measurement':<58} {'median':>12} {'min':>12} {'max':>12} {'n':>3}"]
    for section, figures in results.items():
        lines.append(f"[{section}]")
        for name, s in figures.items():
            cells = " ".join(f"{number(s[k]):>12}" for k in ("median", "min", "max"))
            lines.append(f"  {name:<56} {cells} {s['n']:>3}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the chosen sections, print the table and write `bench.json`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="repetitions per figure")
    parser.add_argument("--with-test", action="store_true", help="also time a cold `make test`")
    parser.add_argument(
        "--before", metavar="REV", help="with the test section: first a cold `make test` of REV"
    )
    parser.add_argument("--only", choices=sorted(SECTIONS), action="append")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    default = [name for name in SECTIONS if name != "test" or args.with_test]
    results = {name: SECTIONS[name](args) for name in args.only or default}
    report = table(results)
    print(report)
    OUT.mkdir(parents=True, exist_ok=True)
    meta = {
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpus": all_threads(),
        "threads": "each figure's name or its 'threads' field says the thread count it ran at",
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    (OUT / "bench.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    print(f"written to {OUT / 'bench.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
