"""What every test of a module of check functions asserts, written once.

A check must accept a right answer, report a stub as "not done yet", and reject a wrong
answer with a message that names what differed and a hint.
"""


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
