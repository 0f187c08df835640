"""An "Open in Colab" entry in the launch menu of every chapter, exercise and solution page.

The theme's own Colab button links the page's source on the repository's main branch,
which is a .md file that Colab cannot open. The deploy workflow publishes each page as a
notebook (`make notebooks`, tools/notebooks.py) on the `colab` branch; this links there.
"""

COLAB = "https://colab.research.google.com/github"
BRANCH = "colab"
FOLDERS = ("chapters", "exercises", "solutions")


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


def setup(app):
    """Register the Colab button with Sphinx."""
    # After the theme's launch buttons (priority 501), before the header is rendered.
    app.connect("html-page-context", add_colab_button, priority=502)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
