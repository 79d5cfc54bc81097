from __future__ import annotations

import hashlib

import pytest

from control_plane.cli import main


def test_keys_create_prints_a_key_once_and_its_policy_hash(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["keys", "create", "--team", "search"])
    assert done.value.code == 0
    lines = capsys.readouterr().out.split()
    key = lines[lines.index("key:") + 1]
    digest = lines[lines.index("hash:") + 1]
    assert key.startswith("sb-") and len(key) > 40
    assert digest == "sha256:" + hashlib.sha256(key.encode()).hexdigest()
