"""What every harness shares: the contract it checks and the way it starts libFuzzer.

A harness's contract: for any input, the code under test returns normally or raises the
project's documented domain error. Anything else escaping `check` — an IndexError, a
ValueError, an untranslated `av` error, a MemoryError, a broken invariant (`Finding`) — is a
crash, and libFuzzer stops and saves the input. Hangs are caught by libFuzzer's `-timeout`.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from pathlib import Path

import atheris

FUZZ_DIR = Path(__file__).resolve().parent
CORPUS_DIR = FUZZ_DIR / "corpus"
# Inputs that once crashed a harness, exactly as found; tests/unit/test_fuzz_regressions.py
# feeds them to the code, and every run starts from them too.
REGRESSIONS_DIR = FUZZ_DIR / "regressions"

# Only these packages are worth coverage feedback: clipmesh's code and the pure-Python
# parsers it hands untrusted bytes to (PIL's image plugins, screenplain). PyAV and OpenCV are
# compiled, so instrumenting Python there would only slow the run down.
INSTRUMENTED = ("clipmesh", "PIL", "screenplain")


class Finding(AssertionError):
    """An invariant the code promises does not hold for this input."""


def expect(condition: bool, message: str) -> None:
    """Raises `Finding(message)` unless `condition` holds."""
    if not condition:
        raise Finding(message)


def fuzz(check: Callable[[bytes], None], *, domain_errors: tuple[type[Exception], ...]) -> None:
    """Runs libFuzzer on `check` with the command line's flags (see `fuzz/run.py`).

    Args:
        check: Feeds one input to the code under test and checks its invariants.
        domain_errors: The errors the code documents for bad input; they are not findings.
    """

    def test_one_input(data: bytes) -> None:
        with contextlib.suppress(domain_errors):
            check(data)

    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
