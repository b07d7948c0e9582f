"""The base of every config section: unknown keys refused with a suggestion."""

from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict

from nnrun.errors import did_you_mean, quoted


class UnknownKeys(ValueError):
    """Keys a section does not take; `nnrun.config.validation` says where else they belong.

    Args:
        section: the section's class.
        keys: the unknown keys, in the order written.
    """

    def __init__(self, section: type["Section"], keys: list[str]) -> None:
        self.section, self.keys = section, keys
        first = keys[0]
        super().__init__(f"unknown key {quoted(first)}{did_you_mean(first, section.model_fields)}")


class Masked(ValueError):
    """A value refused for holding a secret (a password): its message shows the value with the secret masked,
    and the value itself is never echoed."""


class Section(BaseModel):
    """A config section: unknown keys are refused with a suggestion."""

    model_config = ConfigDict(extra="forbid")

    @pydantic.model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        data = cls._short_form(data)
        if isinstance(data, dict):
            unknown = [str(key) for key in data if key not in cls.model_fields]
            if unknown:
                raise UnknownKeys(cls, unknown)
        return data

    @classmethod
    def _short_form(cls, data: Any) -> Any:
        return data
