"""Token estimation for requests (reservations) and for responses that report no usage.

tiktoken's encodings are BPE files it downloads at first use; no PyPI package ships them, so in
an air-gapped deployment tiktoken fails unless its cache was seeded when the image was built.
The default is therefore a deterministic heuristic that never touches the network. Anything
with ``encode_ordinary`` (a ``tiktoken.Encoding`` loaded from a seeded cache) can be plugged in
through :class:`EncodingEstimator`. Either way the resulting usage is marked ``estimated``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import Protocol

from ext_proc.metering.usage import TokenUsage

# The usual BPE average, and the heuristic's floor.
BYTES_PER_TOKEN_FLOOR = 4
# Chat formats wrap each message in a few control tokens (role, separators).
MESSAGE_OVERHEAD_TOKENS = 4


class TokenEstimator(Protocol):
    def count(self, text: str) -> int: ...


class _Encoding(Protocol):
    def encode_ordinary(self, text: str) -> Sequence[int]: ...


# Letters, digits, one CJK/kana/hangul character, or one other non-space character.
_PIECE = re.compile(
    r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]"
    r"|[^\W\d_]+|\d+|[^\w\s]|_"
)


class HeuristicEstimator:
    """Deterministic, network-free count that leans high, which is what a reservation wants.

    Per piece: a word of up to 6 letters costs one token and each further 4 letters one more
    (BPE vocabularies hold common words whole and split rare long ones), a digit run costs
    ceil(len/3), each CJK character and each punctuation mark one token. The result is never
    below ceil(utf8_bytes / 4), the usual BPE average, so unusual scripts cannot collapse it.
    """

    def count(self, text: str) -> int:
        if not text:
            return 0
        pieces = 0
        for match in _PIECE.finditer(text):
            piece = match.group()
            if piece.isdigit():
                pieces += math.ceil(len(piece) / 3)
            elif piece.isalpha():
                pieces += 1 + math.ceil(max(0, len(piece) - 6) / 4)
            else:
                pieces += 1
        return max(pieces, math.ceil(len(text.encode()) / BYTES_PER_TOKEN_FLOOR))


class EncodingEstimator:
    """Exact counts from a BPE encoding the operator made available offline."""

    def __init__(self, encoding: _Encoding) -> None:
        self._encoding = encoding

    def count(self, text: str) -> int:
        return len(self._encoding.encode_ordinary(text))


def estimate_input_tokens(estimator: TokenEstimator, message_texts: Iterable[str]) -> int:
    """Prompt tokens for a chat request given the text of each message (or each input)."""
    return sum(estimator.count(text) + MESSAGE_OVERHEAD_TOKENS for text in message_texts)


def estimate_usage(
    estimator: TokenEstimator, message_texts: Iterable[str], completion_text: str
) -> TokenUsage:
    """Usage for a response whose upstream reported none (always ``estimated=True``)."""
    return TokenUsage(
        input=estimate_input_tokens(estimator, message_texts),
        output=estimator.count(completion_text),
        estimated=True,
    )
