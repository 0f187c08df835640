"""A learner's JupyterLab renders the course's MyST: `jupyter lab` from .venv, a real browser
(Debian's Chromium through Playwright) double-clicks exercises/engine.md, which opens as a
notebook with its exercise boxes and math rendered (jupyterlab-myst); Run All runs it and the
first check prints "not done yet"; saving writes the .md without outputs, and no outputs
anywhere else. Screenshots in _build/screenshots-lab/."""

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
import pytest

from course import book

ROOT = book.ROOT
NOTEBOOK = ROOT / "exercises" / "engine.md"
SHOTS = ROOT / "_build" / "screenshots-lab"


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


@pytest.fixture(scope="module")
def lab(tmp_path_factory, browser):
    """JupyterLab on 127.0.0.1 over a copy of exercises/engine.md, with the settings that
    `make` wrote into .venv (the .md opens as a Jupytext notebook) and a fresh user profile.

    It asks for `browser` first: without Chromium (skipped, or failed in CI, by that
    fixture) there is no point starting JupyterLab.
    """
    base = tmp_path_factory.mktemp("lab")
    root = base / "root"
    (root / "exercises").mkdir(parents=True)
    shutil.copy(NOTEBOOK, root / "exercises" / "engine.md")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    token = secrets.token_hex(16)
    env = os.environ | {
        "JUPYTERLAB_SETTINGS_DIR": str(base / "user-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"),
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
        "JUPYTER_CONFIG_DIR": str(base / "config"),
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
        yield {"url": f"{url}/lab?token={token}", "root": root}
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def page(lab, browser):
    SHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(lab["url"])
    page.locator(".jp-DirListing-item", has_text="exercises").dblclick()
    page.locator(".jp-DirListing-item", has_text="engine.md").dblclick()
    yield page
    context.close()


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
    saved = lab["root"] / "exercises" / "engine.md"
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
        for p in lab["root"].rglob("*")
        if p.is_file() and p != saved and cells(p.read_text(errors="replace")) != cells(source)
    ]
    assert not stray, f"saving wrote {stray} (outputs kept somewhere?)"
