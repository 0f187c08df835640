"""A learner's JupyterLab, in a real browser (Debian's Chromium through Playwright), with
the settings that `make` wrote into .venv.

With jupyterlab-myst, as `make` sets it up: double-clicking exercises/engine.md opens it as
a notebook with its exercise boxes and math rendered (that no page holds a `{ref}` to
another page, which shows as a warning there, is a test of tests/test_notebooks.py); no
prompt about Jupyter news covers it; Run All runs it and the first check prints "not done
yet"; saving writes the .md without outputs, and no outputs anywhere else; a solution box,
which cannot resolve its includes there, links to the solution notebook, and the link
opens it at its code.

Without jupyterlab-myst, as Colab and plain Jupyter show a notebook: the learner's .ipynb
of an exercise page and of a chapter (`make notebooks`) read as plain notebooks, no MyST
showing, exercises titled, a solution box that opens on its code, test-only cells folded.

Screenshots in _build/screenshots/jupyterlab/.
"""

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import jupytext
import nbformat
import pytest

from course import book
from tools import notebooks

ROOT = book.ROOT
NOTEBOOK = ROOT / "exercises" / "engine.md"
SOLUTION = ROOT / "solutions" / "engine.md"
PLAIN = ("exercises/engine", "chapters/tensors")
"""The learner's notebooks opened without jupyterlab-myst: an exercise page, a chapter."""
SHOTS = ROOT / "_build" / "screenshots" / "jupyterlab"
NEWS = "official Jupyter news"
"""Words of the prompt JupyterLab shows on a first start unless its settings say no."""
MYST = re.compile(r"\{(exercise|solution|ref|admonition)\}|^:\w+:|^\(\S+\)=$|^% ", re.M)


def cells(text: str) -> list[tuple[str, str]]:
    """The cells of a MyST notebook as (type, source), outputs never included."""
    notebook = jupytext.reads(text, fmt="md:myst")
    return [(cell.cell_type, cell.source) for cell in notebook.cells]


def shoot(page, locator, name: str) -> None:
    """A screenshot with `locator` in view; JupyterLab re-renders cells as they scroll
    (windowing), so a cell may be replaced while it is brought into view: try again."""
    for _ in range(3):
        try:
            locator.scroll_into_view_if_needed(timeout=10_000)
            break
        except Exception:
            time.sleep(1)
    page.screenshot(path=SHOTS / name)


def first_check_cell(text: str) -> int:
    """Index, among the code cells, of the first cell that calls a check."""
    cells = re.findall(r"^```\{code-cell\}[^\n]*\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    return next(i for i, cell in enumerate(cells) if re.search(r"^check_\w+\(", cell, re.M))


def solution_code(task: str) -> list[str]:
    """The stripped, non-blank lines of solution region `task` of solutions/engine.md."""
    text = SOLUTION.read_text(encoding="utf-8")
    body = re.search(
        rf"# BEGIN SOLUTION {re.escape(task)}\n(.*?)\n[ \t]*# END SOLUTION", text, re.S
    )
    return [line.strip() for line in body[1].splitlines() if line.strip()]


@contextlib.contextmanager
def jupyter_lab(base: Path, root: Path, *, myst: bool):
    """JupyterLab on 127.0.0.1 over `root`, with a fresh user profile and the settings that
    `make` wrote into .venv; without jupyterlab-myst unless `myst`. Yields its settings
    API's and its own address."""
    config = base / "config"
    if not myst:
        (config / "labconfig").mkdir(parents=True)
        disabled = {"disabledExtensions": {"jupyterlab-myst": True}}
        (config / "labconfig" / "page_config.json").write_text(json.dumps(disabled))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    token = secrets.token_hex(16)
    env = os.environ | {
        "JUPYTERLAB_SETTINGS_DIR": str(base / "user-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"),
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
        "JUPYTER_CONFIG_DIR": str(config),
    }
    argv = [
        str(Path(sys.executable).parent / "jupyter"),
        "lab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
    ]
    if os.geteuid() == 0:
        argv.append("--allow-root")
    log = (base / "lab.log").open("w")
    server = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"jupyter lab did not start:\n{(base / 'lab.log').read_text()}")
                time.sleep(0.5)
        yield {"url": url, "token": token, "root": root}
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def lab_url(lab: dict, path: str = "") -> str:
    """The address of JupyterLab, opening `path` if given."""
    return f"{lab['url']}/lab{'/tree/' + path if path else ''}?token={lab['token']}"


@pytest.fixture(scope="module")
def lab(tmp_path_factory, browser):
    """JupyterLab with jupyterlab-myst over copies of exercises/engine.md and the solution
    notebook its solution boxes link to.

    It asks for `browser` first: without Chromium (skipped, or failed in CI, by that
    fixture) there is no point starting JupyterLab.
    """
    base = tmp_path_factory.mktemp("lab")
    root = base / "root"
    for source in (NOTEBOOK, SOLUTION):
        (root / source.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(source, root / source.parent.name / source.name)
    with jupyter_lab(base, root, myst=True) as lab:
        yield lab


@pytest.fixture(scope="module")
def page(lab, browser):
    SHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(lab_url(lab))
    page.locator(".jp-DirListing-item", has_text=NOTEBOOK.parent.name).dblclick()
    page.locator(".jp-DirListing-item", has_text="engine.md").dblclick()
    yield page
    context.close()


@pytest.fixture(scope="module")
def plain_lab(tmp_path_factory, browser):
    """JupyterLab without jupyterlab-myst over the learner's notebooks of PLAIN."""
    base = tmp_path_factory.mktemp("plain-lab")
    for name in PLAIN:
        path = base / "root" / f"{name}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebooks.learner_notebook(name), path)
    with jupyter_lab(base, base / "root", myst=False) as lab:
        yield lab


def test_no_prompt_about_jupyter_news(lab):
    """The settings `make` writes (binder/overrides.json) answer it: never fetch news.
    (JupyterLab applies such overrides to the defaults of the settings' schema.)"""
    request = urllib.request.Request(
        f"{lab['url']}/lab/api/settings/@jupyterlab/apputils-extension:notification",
        headers={"Authorization": f"token {lab['token']}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        properties = json.load(response)["schema"]["properties"]
    assert properties["fetchNews"]["default"] == "false", properties["fetchNews"]


def test_opens_as_a_rendered_notebook(page):
    page.wait_for_selector(".jp-NotebookPanel .jp-MarkdownCell .myst", timeout=60_000)
    assert page.locator(".jp-FileEditor:visible").count() == 0, "opened in the text editor"
    assert page.locator(".jp-NotebookPanel:visible").count() == 1
    exercise = page.locator(".jp-NotebookPanel .myst-exercise").first
    exercise.wait_for()
    shoot(page, exercise, "opened.png")
    assert re.search(r"\d+\.\d+ — \w", exercise.inner_text()), exercise.inner_text()
    assert page.locator(".jp-NotebookPanel .katex").count() > 0, "no formula rendered"
    text = page.locator(".jp-NotebookPanel").inner_text()
    for raw in (":label:", ":nonumber:", "(exercises-engine)=", "{exercise}", "% Generated"):
        assert raw not in text, f"raw MyST shows in the notebook: {raw!r}"
    unresolved = page.locator(".jp-NotebookPanel [title='Cross Reference Not Found']")
    assert unresolved.count() == 0, f"unresolved references: {unresolved.all_inner_texts()}"


def test_run_all_and_save_without_outputs(page, lab):
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    index = first_check_cell(NOTEBOOK.read_text())
    cell = page.locator(".jp-NotebookPanel .jp-CodeCell").nth(index)
    output = cell.locator(".jp-OutputArea-output")
    output.first.wait_for(timeout=240_000)
    shoot(page, cell, "first-check.png")
    assert "not done yet" in output.first.inner_text()
    # Wait for the whole notebook to run: no cell left queued or running.
    page.wait_for_function(
        "() => ![...document.querySelectorAll('.jp-NotebookPanel .jp-InputPrompt')]"
        ".some(p => p.textContent.includes('*'))",
        timeout=300_000,
    )
    saved = lab["root"] / NOTEBOOK.parent.name / NOTEBOOK.name
    before = saved.stat().st_mtime_ns
    page.locator(".jp-NotebookPanel .jp-Notebook").click()
    page.keyboard.press("Control+s")
    deadline = time.monotonic() + 30
    while saved.stat().st_mtime_ns == before:
        assert time.monotonic() < deadline, "Ctrl+S did not save the notebook"
        time.sleep(0.2)
    time.sleep(1)
    page.screenshot(path=SHOTS / "saved.png")
    # The .md keeps the same cells, and no output: the prose mentions "not done yet" as
    # often as before. (Jupytext normalises blank lines and wraps the YAML on save.)
    source = NOTEBOOK.read_text()
    text = saved.read_text()
    assert text.count("not done yet") == source.count("not done yet"), "outputs in the .md"
    assert "execution_count" not in text
    assert "output_type" not in text
    assert cells(text) == cells(source), "saving changed the cells of the .md"
    stray = [
        p
        for p in (lab["root"] / NOTEBOOK.parent.name).rglob("*")
        if p.is_file() and p != saved and cells(p.read_text(errors="replace")) != cells(source)
    ]
    assert not stray, f"saving wrote {stray} (outputs kept somewhere?)"
    assert page.get_by_text(NEWS).count() == 0, "a prompt about Jupyter news shows"


def test_a_solution_box_opens_the_solution(page):
    """jupyterlab-myst resolves no include: the box's link opens the solution notebook,
    which shows the solution's code."""
    index = next(
        i for i, (kind, text) in enumerate(cells(NOTEBOOK.read_text())) if "{solution}" in text
    )
    box = page.locator(".jp-NotebookPanel:visible .jp-Cell").nth(index).locator("details")
    box.locator("summary").click()
    link = box.get_by_role("link", name="the worked solutions")
    link.wait_for(state="visible", timeout=10_000)
    shoot(page, box, "solution-box.png")
    link.click()
    opened = page.locator(".jp-NotebookPanel:visible")
    opened.get_by_text("Solutions: Build your own autograd").wait_for(timeout=30_000)
    code = opened.locator(".jp-CodeCell", has_text="# BEGIN SOLUTION 4.1").first
    code.wait_for(timeout=30_000)
    shoot(page, opened.locator(".myst-exercise", has_text="4.1 — ").first, "solution-opened.png")
    shown = code.inner_text()
    missing = [line for line in solution_code("4.1") if line not in shown]
    assert not missing, f"the opened solution lacks {missing}"


@pytest.mark.parametrize("name", PLAIN)
def test_the_learner_notebook_reads_as_plain_jupyter_shows_it(plain_lab, browser, name):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        # reset: a fresh workspace, so that no notebook of an earlier test opens first
        page.goto(lab_url(plain_lab, f"{name}.ipynb") + "&reset")
        page.locator(".lm-DockPanel-tabBar .lm-mod-current").filter(
            has_text=Path(name).name + ".ipynb"
        ).wait_for(timeout=60_000)
        panel = page.locator(".jp-NotebookPanel:visible")
        panel.locator(".jp-MarkdownCell .jp-RenderedMarkdown h1").first.wait_for(timeout=60_000)
        assert panel.locator(".myst").count() == 0, "jupyterlab-myst is not disabled"
        slug = name.replace("/", "-")
        page.screenshot(path=SHOTS / f"plain-{slug}.png")
        rendered = "\n".join(panel.locator(".jp-RenderedMarkdown").all_inner_texts())
        assert not MYST.search(rendered), f"MyST shows: {MYST.search(rendered)[0]!r}"
        if name == PLAIN[0]:
            heading = panel.locator("h3", has_text="Exercise 4.1 — Add and multiply")
            assert heading.count() == 1, "no heading 'Exercise 4.1 — Add and multiply'"
            box = panel.locator("details", has_text="Solution to Exercise 4.1")
            code = box.locator("pre").first
            assert not code.is_visible(), "the solution shows before it is asked for"
            box.locator("summary").click()
            code.wait_for(state="visible", timeout=10_000)
            shoot(page, box, f"plain-{slug}-solution.png")
            missing = [line for line in solution_code("4.1") if line not in code.inner_text()]
            assert not missing, f"the box's code lacks {missing}"
        else:
            quote = panel.locator("blockquote", has_text="In this chapter").first
            quote.wait_for(state="visible", timeout=10_000)
            folded = panel.locator(".jp-CodeCell .jp-InputPlaceholder")
            assert folded.count() > 0, "no test-only cell is folded"
            shoot(page, folded.first, f"plain-{slug}-folded.png")
    finally:
        context.close()
