"""The exercise generator, and the committed exercises it generates."""

import re

import pytest

from tools.make_exercises import (
    EXERCISES,
    HEADER_END,
    SOLUTIONS,
    MarkerError,
    expected_exercises,
    generate,
    main,
)

KERNEL = "kernelspec:\n  display_name: Python 3\n  language: python\n  name: python3\n"
HEADER = f"{HEADER_END}\n{KERNEL}{HEADER_END}\n\n"
SOLUTION_FILES = sorted(SOLUTIONS.glob("*.md"))


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
    assert main(["--check"]) == 0, "generate, then check: nothing differs"
    edited = next(tmp_path.glob("*.md"))
    edited.write_text(edited.read_text() + "\nhand edit\n")
    assert main(["--check"]) == 1
    assert f"out of date: {tmp_path.name}/{edited.name}" in capsys.readouterr().out


def test_every_solution_round_trips_through_generate_and_check(tmp_path, monkeypatch):
    """Generate every exercise into an empty folder, then --check finds nothing to do."""
    import tools.make_exercises as gen

    monkeypatch.setattr(gen, "EXERCISES", tmp_path)
    monkeypatch.setattr(gen, "ROOT", tmp_path.parent)
    assert main([]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.md")) == [p.name for p in SOLUTION_FILES]
    assert main(["--check"]) == 0


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
    assert "(exercises-demo)=" in out
    assert "# Exercises: Demo" in out
    assert ":label: exercises-demo-1" in out
    assert "Only in the exercise." in out
    assert "EXERCISE ONLY" not in out
    assert "y = x + x" not in out
    assert "Adding x to itself" not in out
    assert '    raise NotImplementedError("Exercise 9.1 is not done yet")\n' in out
    assert '    """Twice x."""' in out, "the docstring stays"
    assert "hide-input" not in out, "the stub is visible in the exercise"
    assert "Generated from solutions/demo.md" in out
    assert out.startswith(HEADER_END + "\n")
    assert KERNEL in out


def test_the_exercise_gets_a_dropdown_that_includes_the_solution():
    out = generate(SOLUTION, "demo.md")
    lines = SOLUTION.splitlines()
    solution = out.split("````{solution} exercises-demo-1\n", 1)[1].split("\n````", 1)[0]
    assert ":class: dropdown" in solution
    code = re.search(r":lines: (\d+)-(\d+),(\d+)-(\d+)", solution)
    first, last, body_first, body_last = map(int, code.groups())
    assert lines[first - 1 : last] == ["def double(x):", '    """Twice x."""']
    assert lines[body_first - 1 : body_last] == ["    y = x + x", "    return y"]
    start = int(re.search(r":start-line: (\d+)", solution)[1])
    end = int(re.search(r":end-line: (\d+)", solution)[1])
    assert lines[start:end] == ["Adding x to itself doubles it."]


def test_generated_stub_runs_and_raises():
    cell = generate(SOLUTION, "demo.md").split("```{code-cell} ipython3\n", 1)[1]
    namespace: dict = {}
    exec(cell.split("```", 1)[0], namespace)
    with pytest.raises(NotImplementedError, match=r"Exercise 9\.1"):
        namespace["double"](2)


EXERCISE_91 = "```{exercise} 9.1 — Double\n:label: solutions-demo-1\n:nonumber:\n```\n\n"
REGION = "def double(x):\n    # BEGIN SOLUTION 9.1\n    return x + x\n    # END SOLUTION\n"


def test_cell_options_as_a_yaml_block_lose_hide_input():
    source = HEADER + EXERCISE_91
    source += "```{code-cell} ipython3\n---\ntags: [engine, hide-input]\n---\n" + REGION + "```\n"
    out = generate(source, "demo.md")
    assert "hide-input" not in out
    assert ":tags: [engine]" in out, "the other tags stay"
    assert "return x + x" not in out


def test_a_code_cell_fenced_with_four_backticks_is_stubbed():
    source = HEADER + EXERCISE_91 + "````{code-cell} ipython3\n:tags: [hide-input]\n"
    source += REGION + "````\n"
    out = generate(source, "demo.md")
    assert "return x + x" not in out, "the solution leaked into the exercise"
    assert 'raise NotImplementedError("Exercise 9.1 is not done yet")' in out
    assert "hide-input" not in out


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "```{code-cell} ipython3\n# BEGIN SOLUTION 9.1\nx = 1\n# END SOLUTION\n```\n",
            r"solutions/demo\.md:14 \(cell 2\): a solution region must be inside a function",
        ),
        (
            "```{code-cell} ipython3\ndef f():\n    # BEGIN SOLUTION 9.1\n    pass\n```\n",
            r"solutions/demo\.md:15 \(cell 2\): code cell ends inside a solution region: "
            r"# BEGIN SOLUTION 9\.1 is never closed",
        ),
        (
            "```{code-cell} ipython3\ndef f():\n    # BEGIN SOLUTION 9.1\n"
            "    # BEGIN SOLUTION 9.1\n    # END SOLUTION\n```\n",
            r"solutions/demo\.md:16 \(cell 2\): nested # BEGIN SOLUTION",
        ),
        (
            "```{code-cell} ipython3\ndef f():\n    # END SOLUTION\n```\n",
            r"solutions/demo\.md:15 \(cell 2\): # END SOLUTION without a BEGIN",
        ),
        (
            "```{code-cell} ipython3\ndef f():\n    # BEGIN SOLUTION\n```\n",
            r"solutions/demo\.md:15 \(cell 2\): malformed marker",
        ),
        (
            "<!-- BEGIN SOLUTION -->\ntext\n",
            r"solutions/demo\.md:13 \(cell 1\): <!-- BEGIN SOLUTION --> is never closed",
        ),
        (
            "<!-- BEGIN SOLUTION -->\n<!-- BEGIN SOLUTION -->\n<!-- END SOLUTION -->\n",
            r"solutions/demo\.md:14 \(cell 1\): nested <!-- BEGIN SOLUTION -->",
        ),
        (
            "text\n<!-- END SOLUTION -->\n",
            r"solutions/demo\.md:14 \(cell 1\): <!-- END SOLUTION --> without a BEGIN",
        ),
        (
            "<!-- EXERCISE ONLY\ntext\n",
            r"solutions/demo\.md:13 \(cell 1\): <!-- EXERCISE ONLY is never closed",
        ),
        (
            "```python\ndef f():\n    # BEGIN SOLUTION 9.1\n    pass\n    # END SOLUTION\n```\n",
            r"solutions/demo\.md:15 \(cell 1\): a code marker .* in a Markdown cell",
        ),
        (
            "```{code-cell} ipython3\ndef f():\n    # BEGIN SOLUTION 9.2\n    pass\n"
            "    # END SOLUTION\n```\n",
            r"solutions/demo\.md:9 \(cell 1\): solution region 9\.2 matches no \{exercise\}",
        ),
    ],
)
def test_bad_markers_are_refused_naming_file_and_line(body, message):
    source = HEADER + EXERCISE_91 + body
    if "9.2" in body:
        source = HEADER + body
    with pytest.raises(MarkerError, match=message):
        generate(source, "demo.md")


def test_main_reports_a_marker_error_without_a_traceback(tmp_path, monkeypatch, capsys):
    import tools.make_exercises as gen

    (tmp_path / "bad.md").write_text(HEADER + "<!-- BEGIN SOLUTION -->\n", encoding="utf-8")
    monkeypatch.setattr(gen, "SOLUTIONS", tmp_path)
    assert main(["--check"]) == 2
    assert "error: solutions/bad.md:" in capsys.readouterr().err


def test_every_solution_has_an_exercise_region():
    for path, text in expected_exercises().items():
        assert "raise NotImplementedError" in text, f"{path.name}: no exercise stub generated"


def _regions(text: str) -> list[list[int]]:
    """The 1-based file lines strictly inside each BEGIN/END SOLUTION pair."""
    regions, current = [], None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("# BEGIN SOLUTION") or stripped == "<!-- BEGIN SOLUTION -->":
            current = []
        elif stripped in ("# END SOLUTION", "<!-- END SOLUTION -->"):
            regions.append(current)
            current = None
        elif current is not None:
            current.append(number)
    return regions


@pytest.mark.parametrize("solution", SOLUTION_FILES, ids=lambda p: p.name)
def test_no_solution_line_is_in_the_exercise(solution):
    """A line inside a region is absent from the exercise, unless the solution also has
    it outside every region (a blank line, a closing bracket, a line the stub keeps)."""
    text = solution.read_text(encoding="utf-8")
    lines = text.splitlines()
    inside = {n for region in _regions(text) for n in region}
    outside = {line.strip() for n, line in enumerate(lines, start=1) if n not in inside}
    exercise = {line.strip() for line in generate(text, solution.name).splitlines()}
    leaked = sorted(
        {lines[n - 1].strip() for n in inside} & exercise - outside - {""},
    )
    assert not leaked, f"{solution.name}: solution lines in the exercise: {leaked}"


@pytest.mark.parametrize("solution", SOLUTION_FILES, ids=lambda p: p.name)
def test_every_solution_line_is_one_click_away_on_the_exercise_page(solution):
    """The dropdowns' includes cover every line of every region, and nothing else but
    the signatures and docstrings of the functions holding them."""
    text = solution.read_text(encoding="utf-8")
    exercise = generate(text, solution.name)
    included = set()
    for spec in re.findall(r"^:lines: (\S+)$", exercise, re.M):
        for part in spec.split(","):
            first, last = map(int, part.split("-"))
            included |= set(range(first, last + 1))
    starts = re.findall(r"^:start-line: (\d+)\n:end-line: (\d+)$", exercise, re.M)
    for start, end in starts:
        included |= set(range(int(start) + 1, int(end) + 1))
    inside = {n for region in _regions(text) for n in region}
    assert inside - included == set(), f"{solution.name}: lines no dropdown includes"
    lines = text.splitlines()
    markers = [n for n in included if "SOLUTION" in lines[n - 1] and "#" in lines[n - 1]]
    assert not markers, f"{solution.name}: a dropdown shows a marker line"
    labels = re.findall(r"^````\{solution\} (\S+)$", exercise, re.M)
    assert len(labels) == len(set(labels)) > 0
    assert set(labels) <= set(re.findall(r"^:label: (exercises-\S+)$", exercise, re.M))
