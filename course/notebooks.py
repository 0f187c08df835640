"""Load code from the solution notebooks, never from a pasted copy (tests and tools alike).

The code cells of `solutions/engine.md` tagged `engine` (the imports, the engine, the
layers and the optimizer) are executed, in order, into a fresh module. The other cells
(checks, data, training, timing) are left out.
"""

import functools
import sys
import types
from pathlib import Path

import jupytext

from course import REPO_ROOT as ROOT

ENGINE_TAG = "engine"
ENGINE_SOURCE = ROOT / "solutions" / "engine.md"
# In the repository a link to ENGINE_SOURCE; in a wheel (Colab), a copy of its text.
ENGINE_PACKAGED = Path(__file__).with_name("engine_reference.md")


def load_notebook_module(path: Path, tag: str, name: str) -> types.ModuleType:
    """A module holding what the code cells of `path` tagged `tag` define."""
    notebook = jupytext.read(path)
    module = types.ModuleType(name, f"The cells tagged {tag!r} of {path.name}")
    module.__file__ = str(path)
    sys.modules[name] = module
    cells = [
        c for c in notebook.cells if c.cell_type == "code" and tag in c.metadata.get("tags", [])
    ]
    assert cells, f"{path} has no code cell tagged {tag!r}"
    for number, cell in enumerate(cells):
        code = compile(cell.source, f"{path.name}[{tag} cell {number}]", "exec")
        exec(code, module.__dict__)
    return module


@functools.cache
def engine() -> types.ModuleType:
    """The reference engine of Chapter 4: `Value`, `Tensor`, `MLP`, `SGD`, ..."""
    path = ENGINE_SOURCE if ENGINE_SOURCE.is_file() else ENGINE_PACKAGED
    return load_notebook_module(path, ENGINE_TAG, "engine_reference")
