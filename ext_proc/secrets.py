"""Credentials by reference: env:NAME, file:/path, secret:NAME/KEY. Values are never logged."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_SECRETS_DIR = "/var/run/switchboard/secrets"


class Secret:
    """A credential value that does not print itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


class SecretUnavailable(Exception):
    pass


def locate(ref: str, secrets_dir: str) -> tuple[str, str]:
    """Where a reference points: ("env", NAME) or ("file", path). Raises SecretUnavailable."""
    source, _, name = ref.partition(":")
    if source == "env":
        return source, name
    if source in ("file", "secret"):
        return "file", name if source == "file" else str(Path(secrets_dir, name))
    raise SecretUnavailable(f"unknown reference kind {source!r}")


def resolve(ref: str, environ: dict[str, str], secrets_dir: str) -> Secret:
    """Read the value a reference points at. Blocking (files): call it off the event loop."""
    source, name = locate(ref, secrets_dir)
    if source == "env":
        value = environ.get(name)
        if not value:
            raise SecretUnavailable(f"environment variable {name} is not set")
    else:
        try:
            value = Path(name).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SecretUnavailable(f"cannot read {name}: {exc.strerror}") from None
        if not value:
            raise SecretUnavailable(f"{name} is empty")
    return Secret(value)


def environment() -> dict[str, str]:
    return dict(os.environ)
