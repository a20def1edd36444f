"""How a process's settings are made: named groups of environment variables, one class."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

from pydantic import BaseModel, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# What every group's model_config starts from: variables matched whatever their case, the
# others' ignored, each field's docstring its description (docs/configuration.md).
GROUP_CONFIG = SettingsConfigDict(
    case_sensitive=False, extra="ignore", use_attribute_docstrings=True
)


class GroupedSettings(BaseModel):
    """A process's settings: named groups (settings.db, settings.tls, ...), each a BaseSettings
    reading its own variables from the environment, under their flat names (POSTGRES_CONNECT,
    TLS_CA_FILE). Keyword arguments take the same flat names and go to the group that has
    that field (tests: UserSettings(postgres_connect=...)); a group's bad value raises that
    group's ValidationError, which names the variable. Each variable is read by one group."""

    def __init__(self, **values: Any) -> None:
        given = {name.lower(): value for name, value in values.items()}
        super().__init__(
            **{
                name: given[name] if isinstance(given.get(name), group) else group(**own)
                for name, group, own in self._routed(given)
            }
        )

    @model_validator(mode="before")
    @classmethod
    def _route_flat_names(cls, data: Any) -> Any:
        """model_validate({flat names}) as __init__ takes them (no environment read)."""
        if not isinstance(data, dict):
            return data
        given = {str(name).lower(): value for name, value in data.items()}
        return {name: given.get(name, own) for name, _, own in cls._routed(given)}

    @classmethod
    def _routed(
        cls, given: dict[str, Any]
    ) -> Iterator[tuple[str, type[BaseSettings], dict[str, Any]]]:
        for name, group in cls.groups().items():
            yield name, group, {k: v for k, v in given.items() if k in group.model_fields}

    @classmethod
    def groups(cls) -> dict[str, type[BaseSettings]]:
        """Each group's attribute name and class, in declaration order."""
        return {
            name: cast("type[BaseSettings]", field.annotation)
            for name, field in cls.model_fields.items()
        }

    @classmethod
    def variables(cls) -> set[str]:
        """Every environment variable this process reads, lower-cased."""
        return {name for group in cls.groups().values() for name in group.model_fields}
