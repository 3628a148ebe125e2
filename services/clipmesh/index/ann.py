"""Choosing, building and searching the FAISS index of one collection.

The kind follows the collection's size and the memory budget:
- `flat`: exact inner product while the collection is small (`exact_max_segments`);
- `ivf_sq8`: inverted lists of 8-bit scalar-quantised vectors (≈ d + 8 bytes a vector, recall
  close to exact) when that fits the budget — the default at scale;
- `ivf_pq`: inverted lists of product-quantised codes (≈ d/8 + 8 bytes a vector) when it does
  not, or when `compact` is asked for.
Exactness is restored afterwards: the final ranking rescores every segment of the candidate
videos against the raw vectors (see `ranking.py`), so quantisation only affects which videos
become candidates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import faiss
import numpy as np

Kind = Literal["flat", "ivf_sq8", "ivf_pq"]
MODES = ("auto", "exact", "balanced", "compact")


@dataclass(frozen=True)
class AnnPlan:
    """Which index to build, and its shape."""

    kind: Kind
    nlist: int = 0
    pq_m: int = 0

    @property
    def trained(self) -> bool:
        return self.kind != "flat"


def bytes_per_vector(kind: Kind, dimension: int, pq_m: int = 0) -> int:
    """In-memory bytes a vector costs in an index of `kind` (codes + id)."""
    return {"flat": 4 * dimension, "ivf_sq8": dimension, "ivf_pq": pq_m}[kind] + 8


def plan_index(
    vectors: int, dimension: int, *, mode: str, exact_max_segments: int, memory_budget_bytes: int
) -> AnnPlan:
    """The index for a collection of `vectors` vectors."""
    if mode == "exact" or (mode == "auto" and vectors <= exact_max_segments):
        return AnnPlan("flat")
    nlist = max(16, 2 ** round(math.log2(4 * math.sqrt(max(vectors, 1)))))
    pq_m = _pq_subquantizers(dimension)
    fits = vectors * bytes_per_vector("ivf_sq8", dimension) <= memory_budget_bytes
    if mode == "compact" or (mode == "auto" and not fits):
        return AnnPlan("ivf_pq", nlist, pq_m)
    return AnnPlan("ivf_sq8", nlist)


def _pq_subquantizers(dimension: int) -> int:
    """dimension/8 sub-quantizers (one byte each), rounded to a divisor of `dimension`."""
    target = max(1, dimension // 8)
    return max(m for m in range(1, target + 1) if dimension % m == 0)


def new_index(plan: AnnPlan, dimension: int) -> faiss.Index:
    """An empty index for `plan` that takes explicit int64 ids (untrained if IVF)."""
    if plan.kind == "flat":
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
    quantizer = faiss.IndexFlatIP(dimension)
    if plan.kind == "ivf_sq8":
        index = faiss.IndexIVFScalarQuantizer(
            quantizer,
            dimension,
            plan.nlist,
            faiss.ScalarQuantizer.QT_8bit,
            faiss.METRIC_INNER_PRODUCT,
        )
    else:
        index = faiss.IndexIVFPQ(
            quantizer, dimension, plan.nlist, plan.pq_m, 8, faiss.METRIC_INNER_PRODUCT
        )
    index.own_fields = True
    quantizer.this.disown()
    return index


def training_size(plan: AnnPlan) -> int:
    """How many vectors to train `plan` on (FAISS wants ≥ 39 per list)."""
    return 0 if not plan.trained else 48 * plan.nlist


def gpu_count() -> int:
    """GPUs FAISS can use: 0 with the CPU build (faiss-cpu) or without a GPU."""
    return faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0


def train(index: faiss.Index, sample: np.ndarray) -> None:
    """Trains an IVF index on `sample` (float32, L2-normalised rows).

    With the GPU build and a GPU present, k-means (the costly part of a rebuild at scale) runs
    on the GPUs; the trained index itself stays on the CPU, where adds, removals and searches
    with id selectors are all supported.
    """
    if index.is_trained:
        return
    if isinstance(index, faiss.IndexIVF) and gpu_count() > 0:
        index.clustering_index = faiss.index_cpu_to_all_gpus(faiss.IndexFlatIP(index.d))
    index.train(np.ascontiguousarray(sample, dtype=np.float32))


def search(
    index: faiss.Index, query: np.ndarray, k: int, *, nprobe: int, allowed: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (scores, ids) for one query, optionally restricted to `allowed` ids."""
    selector = faiss.IDSelectorBatch(allowed) if allowed is not None else None
    if isinstance(index, faiss.IndexIVF):
        params = faiss.SearchParametersIVF(nprobe=nprobe, sel=selector)
    else:
        params = faiss.SearchParameters(sel=selector) if selector is not None else None
    scores, ids = index.search(query.reshape(1, -1), k, params=params)
    keep = ids[0] >= 0
    return scores[0][keep], ids[0][keep]


def memory_bytes(index: faiss.Index) -> int:
    """Approximate bytes the index holds (its codes, ids and coarse centroids)."""
    if isinstance(index, faiss.IndexIVF):
        codes = index.ntotal * (index.code_size + 8)
        return codes + index.nlist * index.d * 4
    return index.ntotal * (index.d * 4 + 16)
