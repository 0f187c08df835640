"""The learner's notebook from every chapter, exercise and solution page: "Open in Colab" in
its launch menu, and the `.ipynb` of its download menu.

The theme's own Colab button links the page's source on the repository's main branch,
which is a .md file that Colab cannot open. The deploy workflow publishes each page as a
notebook (`make notebooks`, tools/notebooks.py) on the `colab` branch; this links there.

The download menu's `.ipynb` was myst-nb's copy of the MyST source, whose exercise boxes,
solution boxes and cross-references plain Jupyter shows as raw text; it becomes the same
learner's notebook that Colab opens, with the outputs the page shows.
"""

import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools import notebooks  # noqa: E402

COLAB = "https://colab.research.google.com/github"
BRANCH = "colab"
FOLDERS = notebooks.FOLDERS


def colab_url(repository_url: str, pagename: str) -> str | None:
    """The Colab link of a page, or None for a page that is not a notebook to run."""
    if pagename.split("/")[0] not in FOLDERS or "github.com/" not in repository_url:
        return None
    org, repo = repository_url.rstrip("/").split("github.com/")[-1].split("/")[:2]
    return f"{COLAB}/{org}/{repo}/blob/{BRANCH}/{pagename}.ipynb"


def add_colab_button(app, pagename, templatename, context, doctree):
    """Add "Open in Colab", pointing at the page's generated notebook, to the launch menu."""
    options = app.config.html_theme_options or {}
    url = colab_url(options.get("repository_url", ""), pagename)
    if url is None:
        return
    button = {
        "type": "link",
        "text": "Open in Colab",
        "tooltip": "Run this page as a notebook on Google Colab",
        "icon": "_static/images/logo_colab.png",
        "url": url,
        "label": "colab-button",
    }
    buttons = context.get("header_buttons", [])
    group = next((b for b in buttons if b.get("label") == "launch-buttons"), None)
    if group is None:
        buttons.append({"type": "group", "tooltip": "Launch interactive content",
                        "icon": "fas fa-rocket", "buttons": [button],
                        "label": "launch-buttons"})  # fmt: skip
    else:
        group["buttons"].append(button)


def offer_the_learner_notebook(app, pagename, templatename, context, doctree):
    """Make the download menu's `.ipynb` the learner's notebook: plain Jupyter Markdown and
    the install cell, with the outputs the page shows (those of the notebook the theme
    copied into `_sources`: a chapter's results, an exercise's "not done yet")."""
    if not context.get("ipynb_source") or pagename.split("/")[0] not in FOLDERS:
        return
    path = Path(app.outdir, "_sources", context["ipynb_source"])
    executed = nbformat.read(path, as_version=4)
    nbformat.write(notebooks.learner_notebook(pagename, executed), path)


def setup(app):
    """Register the Colab button and the learner's download with Sphinx."""
    # After the theme's launch buttons (priority 501, which also copy the page's notebook
    # into `_sources`), before the header is rendered.
    app.connect("html-page-context", add_colab_button, priority=502)
    app.connect("html-page-context", offer_the_learner_notebook, priority=502)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
