"""What the HTTP auth adapters need of a token source, and nothing more (so they do not depend on
:mod:`tokengate_cli.source`, which builds them)."""

from __future__ import annotations

from typing import Protocol


class BearerTokens(Protocol):
    def token(self, scope: str | None = None, *, replacing: str | None = None) -> str:
        """An API token for ``scope``; with ``replacing``, one other than that refused token."""
        ...
