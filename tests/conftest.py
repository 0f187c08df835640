"""Fixtures for every test. The site tests have their own in ``tests/site/conftest.py``."""

import pytest


@pytest.fixture(autouse=True)
def learner_mode(monkeypatch):
    """Check functions only print, as in a learner's notebook: COURSE_CHECKS is unset.

    (Tests of the strict modes set it themselves.)
    """
    monkeypatch.delenv("COURSE_CHECKS", raising=False)
