from __future__ import annotations

import hashlib

import pytest

from control_plane.keys import create_key, is_key_hash, key_hash, key_id, verify_key


def test_create_key_shape_and_hash() -> None:
    key, digest = create_key("search")
    assert key.startswith("sb-")
    assert len(key) == 3 + 43  # 32 bytes, urlsafe base64 without padding
    assert digest == "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    assert is_key_hash(digest)
    assert key_id(key) == digest


def test_keys_are_unique() -> None:
    assert len({create_key("t")[0] for _ in range(100)}) == 100


def test_create_key_needs_a_team() -> None:
    with pytest.raises(ValueError, match="team"):
        create_key("")


def test_verify_key_returns_the_matching_hash() -> None:
    key, digest = create_key("t")
    other = create_key("t")[1]
    assert verify_key(key, [other, digest]) == digest
    assert verify_key(key + "x", [other, digest]) is None
    assert verify_key("", [digest]) is None
    assert verify_key(key, []) is None


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        (key_hash("sb-x"), True),
        ("sha256:" + "A" * 64, False),
        ("sha256:abc", False),
        ("md5:" + "a" * 64, False),
    ],
)
def test_is_key_hash(value: str, valid: bool) -> None:
    assert is_key_hash(value) is valid
