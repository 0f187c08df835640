"""The exercise generator, and the committed exercises it generates."""

import pytest

from tools.make_exercises import (
    EXERCISES,
    HEADER_END,
    MarkerError,
    expected_exercises,
    generate,
    main,
)

HEADER = f"{HEADER_END}\nkernelspec: {{}}\n{HEADER_END}\n"


def test_committed_exercises_are_up_to_date():
    stale = [
        str(path.relative_to(EXERCISES.parent))
        for path, text in expected_exercises().items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]
    assert not stale, f"out of date (run `make exercises`): {stale}"


def test_check_mode_reports_a_hand_edit(tmp_path, monkeypatch, capsys):
    import tools.make_exercises as gen

    monkeypatch.setattr(gen, "EXERCISES", tmp_path)
    monkeypatch.setattr(gen, "ROOT", tmp_path.parent)
    assert main([]) == 0
    edited = next(tmp_path.glob("*.md"))
    edited.write_text(edited.read_text() + "\nhand edit\n")
    assert main(["--check"]) == 1
    assert f"out of date: {tmp_path.name}/{edited.name}" in capsys.readouterr().out


SOLUTION = (
    HEADER
    + """\
(solutions-demo)=
# Solutions: Demo

<!-- EXERCISE ONLY
Only in the exercise.
END EXERCISE ONLY -->

```{exercise} 9.1 — Double
:label: solutions-demo-1
:nonumber:
```

```{code-cell} ipython3
:tags: [hide-input]
def double(x):
    \"\"\"Twice x.\"\"\"
    # BEGIN SOLUTION 9.1
    y = x + x
    return y
    # END SOLUTION
```

<!-- BEGIN SOLUTION -->
Adding x to itself doubles it.
<!-- END SOLUTION -->
"""
)


def test_generate_stubs_and_strips():
    out = generate(SOLUTION, "demo.md")
    assert "(exercises-demo)=" in out and "# Exercises: Demo" in out
    assert ":label: exercises-demo-1" in out
    assert "Only in the exercise." in out and "EXERCISE ONLY" not in out
    assert "y = x + x" not in out and "Adding x to itself" not in out
    assert '    raise NotImplementedError("Exercise 9.1 is not done yet")\n' in out
    assert '    """Twice x."""' in out, "the docstring stays"
    assert "hide-input" not in out, "the stub is visible in the exercise"
    assert "Generated from solutions/demo.md" in out


def test_generated_stub_runs_and_raises():
    cell = generate(SOLUTION, "demo.md").split("```{code-cell} ipython3\n", 1)[1]
    namespace: dict = {}
    exec(cell.split("```", 1)[0], namespace)
    with pytest.raises(NotImplementedError, match="Exercise 9.1"):
        namespace["double"](2)


@pytest.mark.parametrize(
    "body, message",
    [
        ("```{code-cell} ipython3\n# BEGIN SOLUTION 9.1\nx = 1\n# END SOLUTION\n```\n", "function"),
        ("```{code-cell} ipython3\ndef f():\n    # BEGIN SOLUTION 9.1\n    pass\n```\n", "inside"),
        ("```{code-cell} ipython3\ndef f():\n    # END SOLUTION\n```\n", "without a BEGIN"),
        ("```{code-cell} ipython3\ndef f():\n    # BEGIN SOLUTION\n```\n", "malformed"),
        ("<!-- BEGIN SOLUTION -->\ntext\n", "never closed"),
    ],
)
def test_bad_markers_are_refused(body, message):
    with pytest.raises(MarkerError, match=message):
        generate(HEADER + body, "demo.md")


def test_every_solution_has_an_exercise_region():
    for path, text in expected_exercises().items():
        assert "raise NotImplementedError" in text, f"{path.name}: no exercise stub generated"
