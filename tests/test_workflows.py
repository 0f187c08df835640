"""The GitHub Actions workflows are valid (actionlint) and least-privileged."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
ACTIONLINT = Path(sys.executable).parent / "actionlint"


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_actionlint(path):
    result = subprocess.run(
        [str(ACTIONLINT), "-no-color", str(path)], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, f"actionlint on {path.name}:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_least_privilege(path):
    workflow = yaml.safe_load(path.read_text())
    assert workflow.get("permissions") == {"contents": "read"}, (
        f"{path.name}: the workflow-level permissions must be read-only"
    )


def test_ci_runs_make_test():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci and "apt-get update" in ci
    assert "bash .ci/run" in (ROOT / ".github" / "workflows" / "ci.yml").read_text()


def test_deploy_publishes_pages():
    text = (ROOT / ".github" / "workflows" / "deploy.yml").read_text()
    for step in ("actions/upload-pages-artifact", "actions/deploy-pages", "pages: write"):
        assert step in text, f"deploy.yml lacks {step}"
