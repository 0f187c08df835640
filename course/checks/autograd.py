"""Checks for the exercises of Chapter 3 (autograd mechanics).

Torch is the reference: each hand-written vector-Jacobian product is compared with
``torch.autograd.grad`` on the same inputs, in float64.
"""

import torch

from course.checks import call, check, describe, expect, expect_close, expect_equal


def _random(*shape: int, seed: int = 0) -> torch.Tensor:
    """Reproducible float64 input (``seed`` tells two same-shaped inputs apart)."""
    generator = torch.Generator().manual_seed(1000 * seed + sum(shape))
    return torch.randn(shape, generator=generator, dtype=torch.float64)


def _torch_vjp(f, inputs: tuple, v: torch.Tensor) -> tuple:
    """vᵀJ of ``f`` at ``inputs``, by torch: the reference for the hand-written VJPs."""
    leaves = [t.detach().requires_grad_() for t in inputs]
    return torch.autograd.grad(f(*leaves), leaves, grad_outputs=v)


def _by_hand(what: str, function, *args):
    """Call the learner's VJP with recording off, so that it cannot lean on autograd."""
    with torch.no_grad():
        return call(what, function, *args)


def check_vjp_tanh(vjp_tanh):
    """Exercise 3.1: ``vjp_tanh(x, v)`` is vᵀJ of ``y = torch.tanh(x)``."""
    shapes = [(5,), (3, 4), (2, 1, 3)]

    def body():
        for shape in shapes:
            x, v = _random(*shape), _random(*shape, seed=1)
            got = _by_hand(f"x of shape {shape}", vjp_tanh, x, v)
            (expected,) = _torch_vjp(torch.tanh, (x,), v)
            expect_close(got, expected, f"x of shape {shape}", rtol=1e-9)
        return f"matches torch.autograd.grad on {len(shapes)} shapes"

    return check(
        "Exercise 3.1 (vjp_tanh)",
        body,
        hint="J is diagonal with tanh'(x) = 1 - tanh(x)² on it, so vᵀJ is an elementwise "
        "product with v",
    )


def check_vjp_matmul(vjp_matmul):
    """Exercise 3.2: ``vjp_matmul(A, B, V)`` is (vᵀJ for A, vᵀJ for B) of ``Y = A @ B``.

    Every matrix has a different number of rows and columns, so a missing or misplaced
    transpose fails on shapes (or values) rather than passing by accident.
    """
    sizes = [(2, 3, 4), (5, 1, 2), (1, 4, 3)]

    def body():
        for n, k, m in sizes:
            A, B, V = _random(n, k), _random(k, m, seed=1), _random(n, m, seed=2)
            what = f"A of shape {(n, k)}, B of shape {(k, m)}"
            got = _by_hand(what, vjp_matmul, A, B, V)
            expect(
                isinstance(got, tuple) and len(got) == 2,
                f"{what}: expected a tuple (grad_A, grad_B), got {describe(got)}",
            )
            grad_A, grad_B = _torch_vjp(torch.matmul, (A, B), V)
            expect_close(got[0], grad_A, f"{what}: grad_A", rtol=1e-9)
            expect_close(got[1], grad_B, f"{what}: grad_B", rtol=1e-9)
        return f"matches torch.autograd.grad on {len(sizes)} pairs of matrices"

    return check(
        "Exercise 3.2 (vjp_matmul)",
        body,
        hint="grad_A must have A's shape (n, k) and grad_B B's shape (k, m): find the one "
        "product of V with B or A (transposed) that has that shape",
    )


def check_vjp_sum(vjp_sum):
    """Exercise 3.3: ``vjp_sum(x, dim, v)`` is vᵀJ of ``y = x.sum(dim)``.

    The square case catches ``v.expand_as(x)``, which lines ``v`` up with the last
    dimension whatever ``dim`` is.
    """
    cases = [((3, 4), 0), ((3, 4), 1), ((3, 3), 1), ((2, 3, 4), 1), ((2, 3, 4), -1), ((5,), 0)]

    def body():
        for shape, dim in cases:
            x = _random(*shape)
            v = _random(*x.sum(dim).shape, seed=1)
            what = f"x of shape {shape}, dim={dim}"
            got = _by_hand(what, vjp_sum, x, dim, v)
            (expected,) = _torch_vjp(lambda t, d=dim: t.sum(d), (x,), v)
            expect_close(got, expected, what, rtol=1e-12)
        return f"matches torch.autograd.grad on {len(cases)} cases"

    return check(
        "Exercise 3.3 (vjp_sum)",
        body,
        hint="every x element of a slice gets that slice's v: put the summed dimension back "
        "with unsqueeze(dim), then expand to x's shape",
    )


def _jacobian_cases():
    """(description, f, x) with outputs shaped unlike their inputs."""
    W = _random(2, 3)
    return [
        ("f(x) = W @ x, x of shape (3,), y of shape (2,)", lambda x: W @ x, _random(3)),
        (
            "f(x) = outer(x, x[:2]).sin(), x of shape (4,), y of shape (4, 2)",
            lambda x: torch.outer(x, x[:2]).sin(),
            _random(4),
        ),
        (
            "f(x) = x.sum(dim=0) ** 2, x of shape (2, 3), y of shape (3,)",
            lambda x: x.sum(0) ** 2,
            _random(2, 3),
        ),
        ("f(x) = (x ** 3).sum(), a scalar", lambda x: (x**3).sum(), _random(2, 2)),
    ]


def check_jacobian_by_vjps(jacobian_by_vjps):
    """Exercise 3.4: ``jacobian_by_vjps(f, x)`` builds J from one backward pass per output.

    The result has shape ``y.shape + x.shape`` like ``torch.autograd.functional.jacobian``;
    a hook on ``y`` counts the backward passes through it.
    """

    def body():
        for what, f, x in _jacobian_cases():
            passes = []

            def counted(t, f=f, passes=passes):
                y = f(t)
                if y.requires_grad:
                    y.register_hook(lambda grad: passes.append(grad.shape))
                return y

            got = call(what, jacobian_by_vjps, counted, x.detach().requires_grad_())
            expected = torch.autograd.functional.jacobian(f, x)
            expect_close(got, expected, what, rtol=1e-9)
            outputs = f(x).numel()
            expect_equal(len(passes), outputs, f"{what}: number of backward passes through y")
        return "matches torch.autograd.functional.jacobian on 4 functions, one pass per output"

    return check(
        "Exercise 3.4 (jacobian_by_vjps)",
        body,
        hint="run backward once per output element with a one-hot `gradient` shaped like "
        "y (not like x), keep the graph with retain_graph=True, and reshape the stacked rows "
        "to y.shape + x.shape",
    )


EXTREMES = [-1000.0, -30.0, -1.0, 0.0, 1.0, 30.0, 1000.0]
"""Inputs where a naive sigmoid or its derivative overflows (Exercise 3.5)."""


def check_stable_sigmoid(StableSigmoid):
    """Exercise 3.5: ``StableSigmoid`` is an ``autograd.Function`` for sigmoid.

    Its values and gradients must be finite and right at ±1000 in float32 and float64,
    and its backward must pass ``gradcheck`` (which also tries a grad_output other than 1).
    """

    def body():
        expect(
            isinstance(StableSigmoid, type) and issubclass(StableSigmoid, torch.autograd.Function),
            f"expected a subclass of torch.autograd.Function, got {describe(StableSigmoid)}",
        )
        for dtype in (torch.float32, torch.float64):
            x = torch.tensor(EXTREMES, dtype=dtype, requires_grad=True)
            what = f"x = {EXTREMES} in {dtype}"
            got = call(what, StableSigmoid.apply, x)
            expect_close(got, torch.sigmoid(x), f"{what}: values")
            call(what + ": backward", got.backward, torch.ones_like(got))
            s = torch.sigmoid(x.detach())
            expect_close(x.grad, s * (1 - s), f"{what}: gradients")
        x64 = _random(6).requires_grad_()
        call(
            "gradcheck on a float64 input of shape (6,)",
            torch.autograd.gradcheck,
            StableSigmoid.apply,
            (x64,),
        )
        return "right values and gradients at ±1000 in float32 and float64; gradcheck passes"

    return check(
        "Exercise 3.5 (StableSigmoid)",
        body,
        hint="never compute exp of a large positive number: use exp(-|x|), which is at most "
        "1; in backward, reuse the saved output: σ'(x) = σ(x)(1 - σ(x)), times grad_output",
    )


def check_clip_hook(add_clip_hook):
    """Exercise 3.6: ``add_clip_hook(t, limit, log)`` logs each gradient and clips it.

    Tried on a non-leaf (the clipped gradient flows on to the leaf) and on a leaf (it is
    what lands in ``.grad``); after ``handle.remove()`` a backward pass is left alone.
    """
    limit = 1.0
    upstream = torch.tensor([0.5, -4.0, 2.0], dtype=torch.float64)
    clipped = upstream.clamp(-limit, limit)

    def body():
        for where in ("a non-leaf h = 3 * x", "a leaf x"):
            x = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64, requires_grad=True)
            h = 3 * x if where.startswith("a non-leaf") else x
            scale = 3.0 if h is not x else 1.0
            log = []
            handle = call(where, add_clip_hook, h, limit, log)
            expect(
                hasattr(handle, "remove"),
                f"{where}: return the handle that register_hook gives, got {describe(handle)}",
            )
            loss = (h * upstream).sum()
            loss.backward(retain_graph=True)
            expect_equal(len(log), 1, f"{where}: number of gradients logged after one backward")
            expect_close(log[0], upstream, f"{where}: the logged gradient (before clipping)")
            expect_close(x.grad, scale * clipped, f"{where}: x.grad with the hook")
            handle.remove()
            x.grad = None
            loss.backward()
            expect_equal(len(log), 1, f"{where}: number of gradients logged after remove()")
            expect_close(x.grad, scale * upstream, f"{where}: x.grad after remove()")
        return "logs and clips on a non-leaf and on a leaf; remove() turns it off"

    return check(
        "Exercise 3.6 (add_clip_hook)",
        body,
        hint="register a function that appends grad.clone() to log and returns "
        "grad.clamp(-limit, limit) (a new tensor: don't change grad in place); return the "
        "handle that register_hook gives you",
    )
