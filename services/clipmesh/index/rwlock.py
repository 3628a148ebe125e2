"""A readers-writer lock: many concurrent searches, or one mutation at a time."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager


class ReadWriteLock:
    """Searches share it; writes take it alone. Writers are not starved: a waiting writer
    holds back new readers."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._readers = 0
        self._writing = False
        self._writers_waiting = 0

    @contextmanager
    def reading(self) -> Iterator[None]:
        with self._condition:
            while self._writing or self._writers_waiting:
                self._condition.wait()
            self._readers += 1
        with self._held_for_reading():
            yield

    def try_reading(self) -> AbstractContextManager[None] | None:
        """The read lock, taken at once if no writer holds or awaits it, else None: for a
        caller that must not wait (one on the event loop). Enter what it returns at once."""
        with self._condition:
            if self._writing or self._writers_waiting:
                return None
            self._readers += 1
        return self._held_for_reading()

    @contextmanager
    def _held_for_reading(self) -> Iterator[None]:
        try:
            yield
        finally:
            with self._condition:
                self._readers -= 1
                if not self._readers:
                    self._condition.notify_all()

    @contextmanager
    def writing(self) -> Iterator[None]:
        with self._condition:
            self._writers_waiting += 1
            while self._writing or self._readers:
                self._condition.wait()
            self._writers_waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._condition:
                self._writing = False
                self._condition.notify_all()
