"""errors.py's drawing of the error tree is the whole tree: every CarecoordError subclass in the
package is drawn under its real parent, and nothing drawn is missing from the code."""

from __future__ import annotations

import importlib
import pkgutil
import re

import carecoord
import carecoord.errors
from carecoord.errors import CarecoordError

NODE = re.compile(r"^    ((?:[│ ]   )*)(?:[├└]── )?([A-Z]\w+)")


def _drawn_parents() -> dict[str, str | None]:
    """Class name -> the name drawn as its parent, from the module docstring."""
    parents: dict[str, str | None] = {}
    stack: list[str] = []
    for line in (carecoord.errors.__doc__ or "").splitlines():
        match = NODE.match(line)
        if not match or (not stack and match.group(2) != "CarecoordError"):
            continue
        depth = len(match.group(1)) // 4 + (1 if "──" in line else 0)
        del stack[depth:]
        parents[match.group(2)] = stack[-1] if stack else None
        stack.append(match.group(2))
    return parents


def _all_subclasses(cls: type) -> set[type]:
    return {c for sub in cls.__subclasses__() for c in {sub, *_all_subclasses(sub)}}


def test_every_error_is_drawn_under_its_parent() -> None:
    for info in pkgutil.walk_packages(carecoord.__path__, "carecoord."):
        if not info.name.endswith("__main__"):  # a __main__ runs its command when imported
            importlib.import_module(info.name)
    drawn = _drawn_parents()
    classes = {c for c in _all_subclasses(CarecoordError) if c.__module__.startswith("carecoord")}
    assert {c.__name__ for c in classes} - set(drawn) == set(), "not drawn in errors.py"
    for cls in classes:
        assert drawn[cls.__name__] == cls.__bases__[0].__name__, cls.__name__
    assert set(drawn) - {c.__name__ for c in classes} == {"CarecoordError"}, "drawn, not in code"
