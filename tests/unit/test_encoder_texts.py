"""Text intake: empty and oversize texts are refused; long ones are truncated and flagged."""

from __future__ import annotations

import open_clip
import pytest

from clipmesh.encoder.texts import tokenize_texts
from clipmesh.runtime.errors import InvalidArgument

TOKENIZER = open_clip.get_tokenizer("ViT-B-32")


def _tokenize(texts: list[str], max_chars: int = 1000):
    return tokenize_texts(texts, TOKENIZER, context_length=77, max_chars=max_chars)


def test_any_unicode_is_accepted() -> None:
    tokens, truncated = _tokenize(
        ["汉服女孩在樱花树下跳舞", "aerial shot over the sea 🌊🚁", "Ünïcödé"]
    )
    assert tokens.shape == (3, 77)
    assert truncated == [False, False, False]


def test_text_longer_than_the_context_is_truncated_and_flagged() -> None:
    long_text = "a slow dolly shot through a misty bamboo forest at dawn " * 10
    tokens, truncated = _tokenize(["short", long_text])
    assert truncated == [False, True]
    assert tokens.shape == (2, 77)


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_text_is_refused_naming_its_index(text: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        _tokenize(["fine", text])
    assert caught.value.field == "texts[1]"
    assert caught.value.reason == "EMPTY_TEXT"


def test_text_above_the_character_limit_is_refused() -> None:
    with pytest.raises(InvalidArgument) as caught:
        _tokenize(["x" * 101], max_chars=100)
    assert caught.value.reason == "TEXT_TOO_LONG"
    assert "texts[0]" in caught.value.message
