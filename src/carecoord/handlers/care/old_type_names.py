"""0.1's handler modules spelled catalog types out as constants (`REASSIGN =
CareManagerReassign.event_type`); routes and emits now name the model. The constants still
import for one release, with a DeprecationWarning naming the model (they go in 0.3)."""

from __future__ import annotations

import warnings
from collections.abc import Callable

from carecoord.core.catalog import EventData


def old_type_names(module: str, **models: type[EventData]) -> Callable[[str], str]:
    """A module `__getattr__` answering each old constant's name with its model's type."""

    def __getattr__(name: str) -> str:
        model = models.get(name)
        if model is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        warnings.warn(
            f"{module}.{name} is deprecated: use {model.__name__}.event_type (goes in 0.3)",
            DeprecationWarning,
            stacklevel=2,
        )
        return model.event_type

    return __getattr__
