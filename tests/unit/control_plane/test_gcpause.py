from __future__ import annotations

import gc

import pytest

from control_plane.gcpause import paused_gc, without_gc


def test_the_collector_is_paused_and_then_restored_by_the_outermost_pause() -> None:
    assert gc.isenabled()
    with paused_gc():
        assert not gc.isenabled()
        with paused_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_failing_call_restores_the_collector() -> None:
    @without_gc
    def fails() -> None:
        assert not gc.isenabled()
        raise ValueError("compile failed")

    with pytest.raises(ValueError, match="compile failed"):
        fails()
    assert gc.isenabled()
