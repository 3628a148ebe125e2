"""Names checked by a regular expression refuse a trailing newline (`$` matches before one;
the fuzzer found it in the filter keys, the same pattern was in these)."""

from __future__ import annotations

import pytest

from clipmesh.index.records import collection_name
from clipmesh.previs.requests import _name
from clipmesh.runtime.errors import InvalidArgument


@pytest.mark.parametrize("name", ["default\n", "default\r\n", "\ndefault", "de fault"])
def test_collection_names_with_line_breaks_are_refused(name) -> None:
    with pytest.raises(InvalidArgument, match="must start with a letter"):
        collection_name(name)


def test_a_plain_collection_name_passes() -> None:
    assert collection_name("my_clips") == "my_clips"


@pytest.mark.parametrize("value", ["noir\n", "noir\n\n"])
def test_previs_names_with_line_breaks_are_refused(value) -> None:
    with pytest.raises(InvalidArgument, match="is not a valid name"):
        _name(value, "style")
