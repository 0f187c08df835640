"""Helpers shared by the notebooks of the course: data, checks, plots and graphs.

Every piece of code that more than one notebook needs lives here, once.
"""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
"""The root of the course repository (the folder that holds `_config.yml`)."""
