"""A base for handler configuration models: validated once per event from the handler's merged
configuration, failing with a ConfigError that names the handler and the bad keys (not values)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from carecoord.errors import ConfigError, describe_validation


class HandlerConfig(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    # Named in error messages, e.g. "invalid billing config: ...".
    config_name: ClassVar[str] = "handler"

    @classmethod
    def of(cls, config: Mapping[str, Any] | None) -> Self:
        try:
            return cls.model_validate(dict(config or {}))
        except ValidationError as exc:
            raise ConfigError(
                f"invalid {cls.config_name} config: {describe_validation(exc)}"
            ) from exc
