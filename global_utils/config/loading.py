"""Reading a settings class from the environment once at start: a bad value stops the process
with one line naming its variable."""

from __future__ import annotations

from typing import TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings

from global_utils.config.groups import GroupedSettings

SettingsT = TypeVar("SettingsT", bound=BaseSettings | GroupedSettings)


def load_settings(cls: type[SettingsT]) -> SettingsT:
    """Reads cls from the environment; a bad or missing value exits with one line naming it
    (for GroupedSettings: a group's error, whose location is the variable's name)."""
    try:
        return cls()
    except ValidationError as exc:
        first = exc.errors()[0]
        message = str(first["msg"]).removeprefix("Value error, ")
        variable = "_".join(str(part) for part in first["loc"]).upper()
        # A field's error names its variable here; a model-level check names it in the message.
        raise SystemExit(
            f"configuration error: {variable}: {message}"
            if variable
            else f"configuration error: {message}"
        ) from None
