"""bench/gpu.py's search phase: the index service's FAISS index at 1M vectors, searched on the
machine's CPU cores and, where FAISS has GPU support, on the GPU — and exact search done by
PyTorch on the device, which needs no FAISS GPU build.

The index is the one the service builds at this size (`clipmesh.index.ann`: IVF-SQ8, nlist
from the size, trained on a sample, the service's default nprobe), on bench/index.py's clustered
512-d vectors. Recall@10 is over segments, against exact inner-product search.
"""

from __future__ import annotations

import os
import time

import faiss
import numpy as np
import torch

from bench.common import latency_summary
from bench.index import DIMENSION, clustered_vectors, queries_from
from clipmesh.index import ann
from clipmesh.index.config import IndexConfig
from clipmesh.runtime.config import load_config

TOP_K = 10
SINGLE_QUERIES = 200  # timed one at a time, as the service searches; the rest go as one batch


def faiss_gpu_unavailable() -> str:
    """Why FAISS cannot search on a GPU here ("" when it can)."""
    if not hasattr(faiss, "StandardGpuResources"):
        return f"unavailable: this FAISS build ({faiss.__version__}) has no GPU support (faiss-cpu)"
    if ann.gpu_count() == 0:
        return "unavailable: this FAISS GPU build sees no GPU"
    return ""


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth, strict=True))
    return round(hits / truth.size, 4)


def measure_faiss(index: faiss.Index, queries: np.ndarray, truth: np.ndarray, params=None):
    """One query at a time (p50/p99), then all of them as one batch (queries/s, recall)."""
    index.search(queries[:1], TOP_K, params=params)  # warm-up
    latencies = []
    for query in queries[:SINGLE_QUERIES]:
        started = time.perf_counter()
        index.search(query.reshape(1, -1), TOP_K, params=params)
        latencies.append(time.perf_counter() - started)
    started = time.perf_counter()
    _, ids = index.search(queries, TOP_K, params=params)
    batch_s = time.perf_counter() - started
    return {
        **latency_summary(latencies),
        "batch_queries_per_s": round(len(queries) / batch_s, 1),
        "recall_at_10": recall_at_k(ids, truth),
    }


def torch_exact(vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray, device: str):
    """Exact top-10 by a matrix product and topk on `device` (fp16 on CUDA)."""
    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    table = torch.from_numpy(vectors).to(device, dtype)
    asked = torch.from_numpy(queries).to(device, dtype)
    (table @ asked[0]).topk(TOP_K).indices.cpu()  # warm-up
    latencies = []
    for row in range(min(SINGLE_QUERIES, len(asked))):
        started = time.perf_counter()
        (table @ asked[row]).topk(TOP_K).indices.cpu()
        latencies.append(time.perf_counter() - started)
    started = time.perf_counter()
    found = torch.cat([(part @ table.T).topk(TOP_K).indices.cpu() for part in asked.split(256)])
    batch_s = time.perf_counter() - started
    del table, asked
    return {
        "dtype": str(dtype).removeprefix("torch."),
        **latency_summary(latencies),
        "batch_queries_per_s": round(len(queries) / batch_s, 1),
        "recall_at_10": recall_at_k(found.numpy(), truth),
    }


def search_phase(
    vectors_count: int, queries_count: int, device: str, *, cap_s: float
) -> dict[str, object]:
    """Builds the service's index over `vectors_count` vectors and searches it every way; the
    GPU and PyTorch searches are left out (and said to be) once `cap_s` has passed."""
    deadline = time.monotonic() + cap_s
    threads = os.cpu_count() or 1
    faiss.omp_set_num_threads(threads)
    started = time.perf_counter()
    vectors = clustered_vectors(vectors_count, DIMENSION)
    queries = queries_from(vectors, queries_count)
    exact = faiss.IndexFlatIP(DIMENSION)
    exact.add(vectors)
    _, truth = exact.search(queries, TOP_K)
    del exact
    data_s = time.perf_counter() - started

    settings = load_config(IndexConfig, environ={})
    plan = ann.plan_index(
        vectors_count,
        DIMENSION,
        mode="balanced",  # IVF-SQ8: what `auto` builds at 1M within the default memory budget
        exact_max_segments=settings.exact_max_segments,
        memory_budget_bytes=settings.memory_budget_mb * 2**20,
    )
    index = ann.new_index(plan, DIMENSION)
    sample = np.random.default_rng(2).choice(
        vectors_count, min(vectors_count, ann.training_size(plan)), replace=False
    )
    started = time.perf_counter()
    ann.train(index, vectors[np.sort(sample)])
    train_s = time.perf_counter() - started
    started = time.perf_counter()
    index.add_with_ids(vectors, np.arange(vectors_count, dtype=np.int64))
    add_s = time.perf_counter() - started
    probes = faiss.SearchParametersIVF(nprobe=settings.nprobe)
    result: dict[str, object] = {
        "vectors": vectors_count,
        "dimension": DIMENSION,
        "queries": queries_count,
        "faiss": faiss.__version__,
        "index": plan.kind,
        "nlist": plan.nlist,
        "nprobe": settings.nprobe,
        "data_and_truth_s": round(data_s, 1),
        "train_s": round(train_s, 1),
        "add_s": round(add_s, 1),
        "faiss_cpu": {
            "threads": threads,
            **measure_faiss(index, queries, truth, probes),
        },
    }
    unavailable = faiss_gpu_unavailable()
    over_cap = "not measured: the search phase's cap had passed"
    if unavailable or not device.startswith("cuda"):
        result["faiss_gpu"] = unavailable or "not measured: --device is not CUDA"
    elif time.monotonic() > deadline:
        result["faiss_gpu"] = over_cap
    else:
        resources = faiss.StandardGpuResources()
        on_gpu = faiss.index_cpu_to_gpu(resources, 0, index)
        faiss.GpuParameterSpace().set_index_parameter(on_gpu, "nprobe", settings.nprobe)
        result["faiss_gpu"] = measure_faiss(on_gpu, queries, truth)
        flat = faiss.GpuIndexFlatIP(resources, DIMENSION)
        flat.add(vectors)
        result["faiss_gpu_exact"] = measure_faiss(flat, queries, truth)
        del on_gpu, flat
    if time.monotonic() > deadline:
        result["torch_exact"] = over_cap
    else:
        result["torch_exact"] = {"device": device, **torch_exact(vectors, queries, truth, device)}
    return result
