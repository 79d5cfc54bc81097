"""Which Envoy `switchboard up` and `switchboard envoy` run."""

from __future__ import annotations

from pathlib import Path

import pytest

from control_plane.envoy_process import ENVOY_ENV, envoy_binary


def test_the_operators_envoy_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    own = tmp_path / "my-envoy"
    monkeypatch.setenv(ENVOY_ENV, str(own))
    assert envoy_binary() == str(own)


def test_without_it_the_packages_envoy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENVOY_ENV, raising=False)
    assert Path(envoy_binary()).name == "envoy"
