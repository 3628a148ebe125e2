"""Text intake: validation and tokenisation with an honest truncation flag."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from clipmesh.runtime.errors import InvalidArgument


def tokenize_texts(
    texts: Sequence[str], tokenizer: Any, *, context_length: int, max_chars: int
) -> tuple[torch.Tensor, list[bool]]:
    """Tokenises texts in any language; returns (tokens, truncated flags).

    Raises:
        InvalidArgument: an empty (or whitespace-only) text, or one above `max_chars`,
            naming `texts[i]`.
    """
    for index, text in enumerate(texts):
        if not text.strip():
            raise InvalidArgument(
                f"texts[{index}] is empty", field=f"texts[{index}]", reason="EMPTY_TEXT"
            )
        if len(text) > max_chars:
            raise InvalidArgument(
                f"texts[{index}] has {len(text)} characters; the limit is {max_chars}",
                field=f"texts[{index}]",
                reason="TEXT_TOO_LONG",
            )
    truncated = [_token_count(tokenizer, text) > context_length for text in texts]
    return tokenizer(list(texts)), truncated


def _token_count(tokenizer: Any, text: str) -> int:
    """Tokens `text` needs, with start and end tokens, before any truncation."""
    if hasattr(tokenizer, "encode"):  # open_clip's SimpleTokenizer
        return len(tokenizer.encode(text)) + 2
    return len(tokenizer.tokenizer(text)["input_ids"])  # Hugging Face tokenizers
