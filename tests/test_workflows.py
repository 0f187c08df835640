"""The GitHub Actions workflows: linted by zizmor (offline), least-privileged, actions pinned
by commit, the tests run in Debian with CPU-only torch, and only a tested commit deploys."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
GITHUB = ROOT / ".github"
WORKFLOWS = sorted((GITHUB / "workflows").glob("*.yml"))
ZIZMOR = Path(sys.executable).parent / "zizmor"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def load(name: str) -> dict:
    # PyYAML reads the key `on:` as True.
    return yaml.safe_load((GITHUB / "workflows" / name).read_text())


def test_zizmor():
    result = subprocess.run(
        [str(ZIZMOR), "--offline", "--no-progress", "--strict-collection", ".github/"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, f"zizmor:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_least_privilege(path):
    workflow = yaml.safe_load(path.read_text())
    assert workflow.get("permissions") == {"contents": "read"}, (
        f"{path.name}: the workflow-level permissions must be read-only"
    )


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_actions_pinned_by_commit(path):
    for line in path.read_text().splitlines():
        match = re.search(r"uses:\s*(\S+)", line)
        if not match or match[1].startswith("./"):
            continue
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", match[1]), (
            f"{path.name}: {match[1]} is not pinned by a full commit SHA"
        )
        assert re.search(r"#\s*v\d", line), f"{path.name}: say which version {match[1]} is"


def test_ci_runs_dot_ci_run_in_debian():
    job = load("ci.yml")["jobs"]["test"]
    assert job["container"]["image"] == "python:3.11-bookworm"
    runs = [step["run"] for step in job["steps"] if "run" in step]
    assert runs == ["bash .ci/run"], f"the test job must run .ci/run as it is, no sudo: {runs}"
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
    assert "apt-get update" in ci
    assert "chromium" in ci


def test_ci_uses_cpu_wheels_and_caches_pip():
    ci = load("ci.yml")
    assert ci["env"]["PIP_EXTRA_INDEX_URL"] == CPU_INDEX
    cached = [
        step["with"]["path"]
        for step in ci["jobs"]["test"]["steps"]
        if step.get("uses", "").startswith("actions/cache@")
    ]
    assert ci["env"]["PIP_CACHE_DIR"] in cached, "pip's download cache is not cached"
    for lock in ROOT.glob("requirements*.txt"):
        assert "download.pytorch.org" not in lock.read_text(), f"{lock.name} names an index"


def test_deploy_only_after_ci_passed():
    ci, deploy = load("ci.yml"), load("deploy.yml")
    assert set(deploy[True]) == {"workflow_call"}, "deploy.yml must only be called by CI"
    job = ci["jobs"]["deploy"]
    assert job["uses"] == "./.github/workflows/deploy.yml"
    assert job["needs"] == "test"
    assert "refs/heads/main" in job["if"]
    assert "push" in job["if"]
    assert "always()" not in job["if"]
    assert "failure()" not in job["if"]
    assert deploy["env"]["PIP_EXTRA_INDEX_URL"] == CPU_INDEX


def test_deploy_publishes_pages_and_notebooks():
    deploy = load("deploy.yml")
    text = (GITHUB / "workflows" / "deploy.yml").read_text()
    # The front page links to the PDF: the published tree must hold it (make pdf).
    for step in (
        "actions/upload-pages-artifact",
        "actions/deploy-pages",
        "make book notebooks pdf",
    ):
        assert step in text, f"deploy.yml lacks {step}"
    assert deploy["jobs"]["deploy"]["permissions"] == {"pages": "write", "id-token": "write"}
    assert "colab" in deploy["jobs"]["colab"]["steps"][-1]["run"]


def test_dependabot_updates_actions_and_pip():
    config = yaml.safe_load((GITHUB / "dependabot.yml").read_text())
    ecosystems = {update["package-ecosystem"] for update in config["updates"]}
    assert {"github-actions", "pip"} <= ecosystems
    for update in config["updates"]:
        if update["package-ecosystem"] == "pip":
            assert {"dependency-name": "jupyter-book", "versions": [">=2"]} in update["ignore"]
