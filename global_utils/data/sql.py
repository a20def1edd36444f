"""Building parameterized WHERE clauses: values become $n placeholders, never SQL text."""

from __future__ import annotations

from typing import Any


class Filters:
    """Collects conditions joined with AND, and the arguments their placeholders stand for."""

    def __init__(self) -> None:
        self._clauses: list[str] = []
        self.args: list[Any] = []

    def add(self, template: str, *values: Any) -> None:
        """template names its values {0}, {1}, ... (a value may be used more than once)."""
        placeholders = []
        for value in values:
            self.args.append(value)
            placeholders.append(f"${len(self.args)}")
        self._clauses.append(template.format(*placeholders))

    def where(self) -> str:
        return f" WHERE {' AND '.join(self._clauses)}" if self._clauses else ""

    def limit(self, rows: int) -> str:
        self.args.append(rows)
        return f" LIMIT ${len(self.args)}"
