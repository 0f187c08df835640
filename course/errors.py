"""How a page shows an error it expects: one line with the message, not a traceback."""


def short_tracebacks() -> None:
    """Show every error of this notebook as `ErrorType: message`, one line.

    A page shows some errors on purpose (cells tagged `raises-exception`): what a
    reader needs is torch's message. IPython's default traceback adds "Cell In[37],
    line 1", an arrow, a rule of dashes that wraps on a phone, and often frames deep
    inside torch; its "Minimal" mode leaves the message alone. Call this once, in the
    page's first code cell. Outside IPython (a plain script) it does nothing.
    """
    from IPython import get_ipython  # present wherever a notebook runs

    shell = get_ipython()
    if shell is not None:
        shell.InteractiveTB.set_mode("Minimal")
