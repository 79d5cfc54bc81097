from __future__ import annotations

import base64
from pathlib import Path

import pytest

from ext_proc.metering.estimate import (
    MESSAGE_OVERHEAD_TOKENS,
    EncodingEstimator,
    HeuristicEstimator,
    estimate_input_tokens,
    estimate_usage,
)


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("", 0),
        ("hello", 2),  # one word, but never below ceil(5 bytes / 4)
        ("hello world", 3),  # two words, raised to ceil(11 bytes / 4)
        ("the cat sat on the mat", 6),  # one token per short word
        ("internationalization", 5),  # 1 + ceil((20 - 6) / 4)
        ("1234567", 3),  # digits in threes
        ("a, b.", 4),  # a , b .
        ("日本語のテキスト", 8),  # one token per CJK/kana character
    ],
)
def test_heuristic_is_deterministic(text: str, tokens: int) -> None:
    assert HeuristicEstimator().count(text) == tokens


def test_heuristic_never_below_a_quarter_of_the_bytes() -> None:
    text = "ßßßß" * 10  # one long word of two-byte letters
    assert HeuristicEstimator().count(text) >= len(text.encode()) // 4


def test_estimate_usage_is_marked_estimated() -> None:
    usage = estimate_usage(HeuristicEstimator(), ["hi", "there"], "ok")
    assert usage.estimated
    assert usage.input == 1 + 2 + 2 * MESSAGE_OVERHEAD_TOKENS
    assert usage.output == 1


def test_encoding_estimator_with_an_offline_bpe_file(tmp_path: Path) -> None:
    tiktoken = pytest.importorskip("tiktoken")
    # A toy byte-level BPE file in tiktoken's format, built locally: no download needed.
    ranks = {bytes([b]): b for b in range(256)} | {b"ab": 256}
    path = tmp_path / "toy.tiktoken"
    path.write_text("".join(f"{base64.b64encode(t).decode()} {r}\n" for t, r in ranks.items()))
    from tiktoken.load import load_tiktoken_bpe

    encoding = tiktoken.Encoding(
        "toy",
        pat_str=r"\S+|\s+",
        mergeable_ranks=load_tiktoken_bpe(str(path)),
        special_tokens={},
    )
    estimator = EncodingEstimator(encoding)
    assert estimator.count("abab") == 2
    assert estimate_input_tokens(estimator, ["ab", "c"]) == 2 + 2 * MESSAGE_OVERHEAD_TOKENS
