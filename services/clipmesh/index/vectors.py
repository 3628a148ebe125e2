"""Raw segment vectors by slot: the snapshot's file memory-mapped, plus an in-memory tail.

Slots are append-only and never reused, so a slot's vector never changes once written; the
ANN index holds compressed codes, and these exact vectors serve re-ranking and rebuilds.
Stored as float16 (cosine error ~1e-3, half the bytes of float32).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

STORED_DTYPE = np.float16


def widened(rows: np.ndarray) -> np.ndarray:
    """float16 rows (2-d) as float32, exactly.

    OpenCV converts with the CPU's F16C instructions where it has them; NumPy's cast converts
    one element at a time in software, about 15 times slower, which made widening the rows of
    a search's candidates its costliest step.
    """
    if not rows.size:
        return rows.astype(np.float32)
    # convertFp16 reads half floats as int16 (CV_16S), as OpenCV documents it.
    return cv2.convertFp16(np.ascontiguousarray(rows).view(np.int16))


class RawVectors:
    """Vectors of slots [0, len): slots below `base_count` come from a memory-mapped file."""

    def __init__(self, dimension: int, base: np.ndarray | None = None) -> None:
        self.dimension = dimension
        self._base = base if base is not None else np.zeros((0, dimension), STORED_DTYPE)
        self._tail = np.zeros((1024, dimension), STORED_DTYPE)
        self._tail_count = 0

    def __len__(self) -> int:
        return len(self._base) + self._tail_count

    @property
    def base_count(self) -> int:
        return len(self._base)

    def append(self, vectors: np.ndarray) -> None:
        """Appends rows (float32) at the next slots."""
        needed = self._tail_count + len(vectors)
        if needed > len(self._tail):
            grown = np.zeros((max(needed, 2 * len(self._tail)), self.dimension), STORED_DTYPE)
            grown[: self._tail_count] = self._tail[: self._tail_count]
            self._tail = grown
        self._tail[self._tail_count : needed] = vectors
        self._tail_count = needed

    def take(self, slots: np.ndarray) -> np.ndarray:
        """float32 rows for `slots` (any order)."""
        slots = np.asarray(slots, dtype=np.int64)
        base_count = len(self._base)
        # One gather from one array where the slots allow it (searches usually read the
        # snapshot's rows only), then one widening of the gathered rows.
        if len(slots) and slots.max() < base_count:
            rows = np.asarray(self._base)[slots]
        elif len(slots) and slots.min() >= base_count:
            rows = self._tail[slots - base_count]
        else:
            rows = np.empty((len(slots), self.dimension), STORED_DTYPE)
            in_base = slots < base_count
            rows[in_base] = self._base[slots[in_base]]
            rows[~in_base] = self._tail[slots[~in_base] - base_count]
        return widened(rows)

    def save(self, path: Path) -> None:
        """Writes every slot's vector to `path` as a .npy file (streamed, not copied whole)."""
        total = len(self)
        out = np.lib.format.open_memmap(
            path, mode="w+", dtype=STORED_DTYPE, shape=(total, self.dimension)
        )
        chunk = 65536
        for start in range(0, len(self._base), chunk):
            out[start : start + chunk] = self._base[start : start + chunk]
        out[len(self._base) : total] = self._tail[: self._tail_count]
        out.flush()
        del out

    @classmethod
    def load(cls, path: Path) -> RawVectors:
        """Maps a saved file read-only; its rows become the base."""
        base = np.load(path, mmap_mode="r")
        return cls(base.shape[1], base)
