"""The check framework every check cell uses: verdicts, messages and modes."""

from pathlib import Path

import numpy as np
import pytest
import torch

from course.checks import (
    MODE_ENV,
    CheckError,
    Hint,
    Mismatch,
    call,
    check,
    expect_close,
    expect_equal,
    hinted,
    learner_check,
    reset_hints,
)

ROOT = Path(__file__).resolve().parent.parent


def test_pass_prints_a_tick(capsys):
    verdict = check("Exercise 0.1 (f)", lambda: "matches torch")
    assert verdict.passed
    assert verdict.status == "pass"
    assert capsys.readouterr().out == "✓ Exercise 0.1 (f): matches torch\n"


def test_stub_is_not_done_yet(capsys):
    def body():
        raise NotImplementedError("Exercise 0.1 is not done yet")

    verdict = check("Exercise 0.1 (f)", body)
    assert verdict.status == "todo"
    assert "not done yet" in capsys.readouterr().out


def test_mismatch_names_what_differed_and_hints(capsys):
    def body():
        expect_equal((4, 1), (4,), "shape of the row sums")

    verdict = check("Exercise 0.1 (f)", body, hint="keepdim=True")
    out = capsys.readouterr().out
    assert verdict.status == "fail"
    assert out.startswith("✗ Exercise 0.1 (f): shape of the row sums")
    assert "expected (4,), got (4, 1)" in out
    assert "Hint: keepdim=True" in out


def test_a_crash_in_learner_code_is_reported_not_raised(capsys):
    verdict = check("Exercise 0.1 (f)", lambda: torch.ones(2) @ torch.ones(3))
    assert verdict.status == "fail"
    assert "your code raised RuntimeError" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("got", "message"),
    [
        (torch.tensor([1.0, 2.0]), "shape: expected (2, 2), got (2,)"),
        ([[1.0, 2.0]], "expected a torch.Tensor"),
        (np.array([[1.0, 2.0], [3.0, 4.0]]), "expected a torch.Tensor, got array"),
        (
            torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64),
            "dtype: expected torch.float32",
        ),
        (torch.tensor([[1.0, 2.0], [3.0, float("nan")]]), "index (1, 1): expected 4, got nan"),
        (torch.tensor([[1.0, 2.0], [3.0, float("inf")]]), "index (1, 1): expected 4, got inf"),
        (torch.tensor([[1, 2], [3, 4]]), "dtype: expected torch.float32, got torch.int64"),
        (None, "expected a torch.Tensor, got None"),
        (torch.tensor([[1.0, 2.0], [3.0, 5.0]]), "index (1, 1): expected 4, got 5"),
    ],
)
def test_expect_close_says_what_differs(got, message):
    expected = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(Mismatch, match=message.replace("(", r"\(").replace(")", r"\)")):
        expect_close(got, expected, "y")


def test_expect_close_accepts_equal_values_across_kinds():
    expect_close(np.array([1.0, 2.0]), torch.tensor([1.0, 2.0]), "y", dtype=False)
    expect_close(torch.tensor(3.0), 3.0, "y")
    expect_close(float("inf"), float("inf"), "y")
    expect_close(torch.tensor([float("-inf"), 1.0]), torch.tensor([float("-inf"), 1.0]), "y")
    with pytest.raises(Mismatch, match=r"expected 3, got 3\.1"):
        expect_close(3.1, 3.0, "y")


@pytest.mark.parametrize(
    "got", [None, "3.0", True, [3.0], torch.ones(2), float("nan"), float("inf"), 1j]
)
def test_expect_close_rejects_junk_numbers(got):
    with pytest.raises(Mismatch, match="y: expected"):
        expect_close(got, 3.0, "y")


class BrokenStr(Exception):
    def __str__(self):
        raise ValueError("no str")


class BrokenRepr:
    def __repr__(self):
        raise ValueError("no repr")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            lambda: (_ for _ in ()).throw(BrokenStr()),
            "your code raised BrokenStr: <BrokenStr whose",
        ),
        (lambda: expect_close(BrokenRepr(), torch.ones(2), "y"), "<BrokenRepr whose repr() raised"),
        (lambda: expect_close(BrokenRepr(), 1.0, "y"), "y: expected a number"),
        (lambda: call("f(x)", None), "f(x): expected a function, got None"),
        (lambda: call("f(x)", lambda: 1 / 0), "f(x): your code raised ZeroDivisionError"),
        (
            lambda: expect_close(np.array(["a", "b"], dtype=object), np.ones(2), "y", dtype=False),
            "expected real numbers",
        ),
    ],
)
def test_junk_never_escapes_check(body, message, capsys):
    verdict = check("Exercise 0.1 (f)", body)
    out = capsys.readouterr().out
    assert verdict.status == "fail", out
    assert message in out, out


def test_checks_leave_the_global_random_state_alone(capsys):
    torch.manual_seed(123)
    np.random.seed(123)
    expected_torch, expected_numpy = torch.rand(3), np.random.rand(3)
    torch.manual_seed(123)
    np.random.seed(123)

    def body():
        torch.manual_seed(0)
        np.random.seed(0)
        torch.rand(5)
        return "ok"

    check("Exercise 0.1 (f)", body)
    assert torch.equal(torch.rand(3), expected_torch), "check reseeded torch's global generator"
    assert np.array_equal(np.random.rand(3), expected_numpy), "check reseeded NumPy's"


@pytest.mark.parametrize(
    ("mode", "status", "raises"),
    [
        ("strict", "pass", False),
        ("strict", "fail", True),
        ("strict", "todo", True),
        ("stubs", "todo", False),
        ("stubs", "pass", True),
        ("bogus", "pass", True),
    ],
)
def test_modes(monkeypatch, mode, status, raises):
    monkeypatch.setenv(MODE_ENV, mode)

    def body():
        if status == "fail":
            raise Mismatch("wrong")
        if status == "todo":
            raise NotImplementedError
        return "ok"

    if raises:
        with pytest.raises(CheckError):
            check("Exercise 0.1 (f)", body)
    else:
        assert check("Exercise 0.1 (f)", body).status == status


def public_check_functions():
    import importlib
    import inspect
    import pkgutil

    import course.checks

    for info in pkgutil.walk_packages(course.checks.__path__, "course.checks."):
        module = importlib.import_module(info.name)
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if function.__module__ == module.__name__ and name.startswith("check_"):
                yield f"{info.name.removeprefix('course.checks.')}.{name}", function


CHECKS = list(public_check_functions())


@pytest.mark.parametrize(("name", "function"), CHECKS, ids=[name for name, _ in CHECKS])
def test_every_public_check_is_typed(name, function):
    import inspect

    signature = inspect.signature(function)
    missing = [
        p for p, v in signature.parameters.items() if v.annotation is inspect.Parameter.empty
    ]
    assert not missing, f"{name}: parameters without a type: {missing}"
    assert signature.return_annotation is not inspect.Signature.empty, f"{name}: no return type"


def test_hints_grow_one_step_per_failure_of_the_same_exercise(capsys):
    hint = Hint("look at the axis", "the sum runs over rows", "use keepdim=True")

    def wrong():
        raise Mismatch("expected 1, got 2")

    first = check("Exercise 9.1 (demo)", wrong, hint=hint).message
    assert "look at the axis" in first, first
    assert "Nudge" not in first, first
    assert "keepdim" not in first, first
    assert "Another ✗" in first, "the first hint must say that more will come"
    other = check("Exercise 9.2 (other)", wrong, hint=hint).message
    assert "Nudge" not in other, "each exercise counts its own failures"
    second = check("Exercise 9.1 (demo)", wrong, hint=hint).message
    assert "Nudge: the sum runs over rows" in second, second
    assert "keepdim" not in second, second
    third = check("Exercise 9.1 (demo)", wrong, hint=hint).message
    assert "Recipe: use keepdim=True" in third, third
    assert "Another" not in third, third
    reset_hints()
    assert "keepdim" not in check("Exercise 9.1 (demo)", wrong, hint=hint).message


def test_a_learner_can_ask_for_the_whole_hint_at_once(capsys):
    hint = Hint("look at the axis", "the sum runs over rows", "use keepdim=True")

    @learner_check
    def check_demo(answer):
        def body():
            raise Mismatch(f"expected 1, got {answer}")

        return check("Exercise 9.3 (demo)", body, hint=hint)

    assert "Recipe: use keepdim=True" in check_demo(2, hint="full").message
    reset_hints()
    assert "Recipe" not in check_demo(2).message
    with pytest.raises(ValueError, match='hint="full"'):
        check_demo(2, hint="all")


def test_a_specific_progressive_hint_wins_over_the_general_one(capsys):
    specific = Hint("integer division", "look at the dtype", "divide floats")

    def wrong():
        with hinted(specific):
            raise Mismatch("dtype differs")

    message = check("Exercise 9.4 (demo)", wrong, hint="general hint").message
    assert "integer division" in message, message
    assert "general hint" not in message, message
    message = check("Exercise 9.4 (demo)", wrong, hint="general hint").message
    assert "Nudge: look at the dtype" in message, message


def test_no_check_hands_out_a_plain_string_hint():
    """Every check's hint is a `Hint` in steps, so the first ✗ never carries the recipe."""
    import ast

    plain = []
    for path in sorted((ROOT / "course" / "checks").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") in ("check", "hinted"):
                texts = [k.value for k in node.keywords if k.arg == "hint"]
                if getattr(node.func, "id", "") == "hinted" and node.args:
                    texts.append(node.args[0])
                for text in texts:
                    if isinstance(text, (ast.Constant, ast.JoinedStr)):
                        plain.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not plain, "hints as one plain string (use course.checks.Hint): " + ", ".join(plain)


def test_every_check_a_notebook_calls_accepts_hint_full():
    import importlib
    import pkgutil

    import course.checks

    missing = []
    for module in pkgutil.walk_packages(course.checks.__path__, "course.checks."):
        mod = importlib.import_module(module.name)
        for name in dir(mod):
            function = getattr(mod, name)
            own = getattr(function, "__module__", "").startswith(module.name)
            wrapped = hasattr(function, "__wrapped__")
            if name.startswith("check_") and callable(function) and own and not wrapped:
                missing.append(f"{module.name}.{name}")
    assert not missing, "checks without @learner_check (no hint='full'): " + ", ".join(missing)


def test_a_mismatch_names_the_first_differing_entries_with_digits_that_differ(capsys):
    expected = torch.linspace(0, 1, 600, dtype=torch.float32).reshape(20, 30)
    got = expected.clone()
    got[3, 4] += 1e-3
    got[7, 0] = expected[7, 0] * (1 + 3e-7) + 1e-6
    verdict = check("Exercise 0.9 (f)", lambda: expect_close(got, expected, "output", rtol=1e-7))
    message = verdict.message
    assert "2 of 600 entries differ" in message, message
    assert "at (3, 4)" in message, message
    assert len(message) < 400, f"a mismatch message of {len(message)} characters: {message}"
    first = message.split("at (7, 0): expected ")[1].split(";")[0]
    want, have = first.split(", got ")
    assert want != have, f"expected and got print the same: {first}"
