"""Files a running service re-reads when they change: TLS material, the tokens file, the policy.

`FileWatch` notices a change without reading the files; `WatchedFile` keeps a file's parsed
content and swaps it for the new one when the file changed and parses, looking at most once per
interval. A changed file that does not load is logged and skipped until the next change, so
what is in use stays: a bad edit or a half-done rotation never takes a serving service down.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

from clipmesh.runtime.config import ConfigError

log = logging.getLogger(__name__)

T = TypeVar("T")


class FileWatch:
    """Notices that one of a set of files changed, without reading them: how the TLS files and
    the tokens file are reloaded.

    A file's modification time, size and inode are compared with the last look (an unset or
    absent path counts as None). A Kubernetes Secret update swaps a symlink to a new directory
    and cert-manager rewrites the files: either way one of the three changes.
    """

    def __init__(self, paths: list[str]) -> None:
        self._paths = list(paths)
        self._signature = self._look()

    def changed(self) -> bool:
        """True once for each change since the last look."""
        signature = self._look()
        if signature == self._signature:
            return False
        self._signature = signature
        return True

    def reload(self, load: Callable[[], T], what: str) -> T | None:
        """`load()` after a change, else None. A changed set that does not load (a key renewed
        before its certificate) is logged as `what` and skipped until the next change, so what
        is in use stays: a bad rotation never takes a serving service down."""
        if not self.changed():
            return None
        try:
            return load()
        except ConfigError as exc:
            log.error("%s changed but cannot be loaded; keeping what is in use: %s", what, exc)
            return None

    def _look(self) -> tuple[tuple[int, int, int] | None, ...]:
        signature = []
        for path in self._paths:
            try:
                st = os.stat(path) if path else None
            except OSError:
                st = None
            signature.append(None if st is None else (st.st_mtime_ns, st.st_size, st.st_ino))
        return tuple(signature)


class WatchedFile(Generic[T]):
    """A file's parsed content, re-read when the file changes.

    Args:
        path: The file.
        setting: The setting that named it, for messages ("CLIPMESH_…_POLICY_FILE").
        parse: Builds the content from the file's text and a `source` to name in errors;
            raises ConfigError for content it refuses.
        what: What the file is, for log lines ("tokens file", "policy").
        max_bytes: Larger files are refused unread.
        check_interval_s: Least time between two looks at the file.

    Raises:
        ConfigError: At construction, when the file cannot be read or parsed.
    """

    def __init__(
        self,
        path: Path,
        setting: str,
        parse: Callable[[str, str], T],
        *,
        what: str,
        max_bytes: int = 1 << 20,
        check_interval_s: float = 1.0,
    ) -> None:
        self._path, self._setting, self._parse = path, setting, parse
        self._what, self._max_bytes = what, max_bytes
        self._check_interval_s = check_interval_s
        self._lock = threading.Lock()
        self._checked_at = time.monotonic()
        self._watch = FileWatch([str(path)])
        self._value = self._load()

    @property
    def source(self) -> str:
        """`SETTING=path`, as messages name the file."""
        return f"{self._setting}={self._path}"

    def current(self) -> T:
        """The content as of the last successful load, after a look at the file if one is due."""
        now = time.monotonic()
        if now - self._checked_at >= self._check_interval_s:
            with self._lock:
                self._checked_at = now
                value = self._watch.reload(self._load, self._what)
                if value is not None:
                    self._value = value
                    log.info("%s reloaded", self._what, extra={"file": str(self._path)})
        return self._value

    def _load(self) -> T:
        try:
            size = self._path.stat().st_size
            if size > self._max_bytes:
                raise ConfigError(
                    f"{self.source}: the file is {size:,} bytes; the limit is {self._max_bytes:,}"
                )
            text = self._path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{self.source}: cannot be read ({exc})") from exc
        return self._parse(text, self.source)
