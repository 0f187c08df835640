"""course.errors: a page shows an expected error as its message, in one line."""

import IPython

from course.errors import short_tracebacks


class FakeTracebacks:
    mode = "Context"

    def set_mode(self, mode):
        self.mode = mode


class FakeShell:
    def __init__(self):
        self.InteractiveTB = FakeTracebacks()


def test_in_a_notebook_errors_show_as_one_line(monkeypatch):
    shell = FakeShell()
    monkeypatch.setattr(IPython, "get_ipython", lambda: shell)
    short_tracebacks()
    assert shell.InteractiveTB.mode == "Minimal", "IPython's tracebacks were left as they were"


def test_outside_ipython_it_does_nothing(monkeypatch):
    monkeypatch.setattr(IPython, "get_ipython", lambda: None)
    short_tracebacks()
