"""What every test of a module of check functions asserts, written once.

A check must accept a right answer, report a stub as "not done yet", and reject a wrong
answer with a message that names what differed and a hint; its hint grows in steps.
"""

import pytest

from course.checks import reset_hints


def assert_passes(check, answer, capsys) -> None:
    verdict = check(answer)
    assert verdict.passed, f"{check.__name__} rejected a right answer: {capsys.readouterr().out}"


def assert_not_done_yet(check, stub, capsys) -> None:
    verdict = check(stub)
    assert verdict.status == "todo", f"{check.__name__} did not report a stub as not done yet"
    assert "not done yet" in capsys.readouterr().out


def assert_fails(check, wrong, message: str, capsys) -> None:
    verdict = check(wrong)
    out = capsys.readouterr().out
    name = check.__name__
    assert verdict.status == "fail", f"{name} accepted a wrong answer"
    assert message in out, f"{name}: expected {message!r} in the verdict, got:\n{out}"
    assert "Hint:" in out, f"{name}: a failure must come with a hint"


def assert_hint_grows(check, wrong, recipe: str, capsys) -> None:
    """The first ✗ of `wrong` points at the idea without `recipe`; the third gives it."""
    reset_hints()
    failures = []
    for _ in range(3):
        verdict = check(wrong)
        capsys.readouterr()
        assert verdict.status == "fail", f"{check.__name__} accepted a wrong answer"
        failures.append(verdict.message)
    reset_hints()
    first, third = failures[0], failures[-1]
    name = check.__name__
    assert recipe not in first, f"{name}: the first ✗ gives the recipe away:\n{first}"
    assert "Recipe:" not in first, f"{name}: the first ✗ gives the recipe away:\n{first}"
    assert "Another ✗" in first, f"{name}: the first ✗ must say that more will come:\n{first}"
    assert "Recipe:" in third, f"{name}: the third ✗ lacks the recipe:\n{third}"
    assert recipe in third, f"{name}: the third ✗ lacks {recipe!r}:\n{third}"


def table_tests(module, right: dict, stubs: dict, wrong: list) -> tuple:
    """The three table-driven tests of a module of checks, for its `check_*` functions.

    `right` and `stubs` map a check's name to an answer; `wrong` lists (check name, wrong
    answer, a piece of the expected message). Assign the result to test names, which
    pytest then collects from the test module:

        tests = table_tests(checks, RIGHT, STUBS, WRONG)
        test_right_answer_passes, test_stub_is_not_done_yet, test_wrong_answer_fails = tests
    """

    @pytest.mark.parametrize("name", sorted(right))
    def test_right_answer_passes(name, capsys):
        assert_passes(getattr(module, name), right[name], capsys)

    @pytest.mark.parametrize("name", sorted(stubs))
    def test_stub_is_not_done_yet(name, capsys):
        assert_not_done_yet(getattr(module, name), stubs[name], capsys)

    @pytest.mark.parametrize(
        ("name", "answer", "message"), wrong, ids=[f"{w[0]}-{w[2]}" for w in wrong]
    )
    def test_wrong_answer_fails_and_says_why(name, answer, message, capsys):
        assert_fails(getattr(module, name), answer, message, capsys)

    return test_right_answer_passes, test_stub_is_not_done_yet, test_wrong_answer_fails_and_says_why
