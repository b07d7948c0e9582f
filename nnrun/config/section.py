"""The base of every config section: unknown keys refused with a suggestion."""

from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict

from nnrun.errors import did_you_mean


class Section(BaseModel):
    """A config section: unknown keys are refused with a suggestion."""

    model_config = ConfigDict(extra="forbid")

    @pydantic.model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        data = cls._short_form(data)
        if isinstance(data, dict):
            for key in data:
                if key not in cls.model_fields:
                    raise ValueError(f"unknown key '{key}'{did_you_mean(key, cls.model_fields)}")
        return data

    @classmethod
    def _short_form(cls, data: Any) -> Any:
        return data
