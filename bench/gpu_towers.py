"""bench/gpu.py's variants of the image tower: the same open_clip tower run eagerly, replayed as
a CUDA graph, and compiled by torch.compile — to see what each would give the service.

Every variant does the service's whole step (encoding.py, model.py): float32 pixels from host
memory onto the device in the model's precision, the tower, L2 normalisation, the vectors back
to the host. The tower is built by open_clip from its config with seeded random weights (speed
does not depend on them), so the variants compare like with like.

torch.compile's compile time is measured and capped: batch sizes run in an order that tells
the most first (1, where launch overhead rules; the largest, where arithmetic does; then the
rest), and a batch size whose compilation would not fit in what is left of the cap is skipped
and named. A compilation that has begun cannot be stopped, so the first one is the cap's risk.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import open_clip
import torch
import torch.nn.functional as F

import clipmesh.encoder.model  # noqa: F401  (registers clipmesh-tiny with open_clip)

DTYPES = {"cuda": torch.float16, "cpu": torch.float32}


def images_per_s(step: Callable[[], object], batch: int, seconds: float) -> float:
    """`batch` × calls of `step` per second, after two warm-up calls."""
    step()
    step()
    started, done = time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        step()
        done += batch
    return round(done / (time.perf_counter() - started), 1)


def load_tower(model_name: str, device: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = open_clip.create_model(model_name, pretrained=None)
    dtype = DTYPES[torch.device(device).type]
    return model.visual.eval().to(device, dtype)


def eager_step(tower: torch.nn.Module, pixels: torch.Tensor, device: str, dtype: torch.dtype):
    def step() -> torch.Tensor:
        features = tower(pixels.to(device, dtype))
        return F.normalize(features.float(), dim=-1).cpu()

    return step


def cuda_graph_step(tower: torch.nn.Module, pixels: torch.Tensor, device: str, dtype):
    """The tower captured once as a CUDA graph for this batch size, then replayed."""
    static_in = pixels.to(device, dtype)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):  # warm up outside the capture (cuBLAS workspaces, allocator)
            tower(static_in)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_out = tower(static_in)

    def step() -> torch.Tensor:
        static_in.copy_(pixels)
        graph.replay()
        return F.normalize(static_out.float(), dim=-1).cpu()

    return step


def compile_order(batches: Sequence[int]) -> list[int]:
    """1, the largest, then the rest: the most telling sizes first."""
    first = [b for b in (min(batches), max(batches)) if b in batches]
    return list(dict.fromkeys(first + sorted(batches)))


@torch.inference_mode()
def tower_variants(
    model_name: str,
    device: str,
    batches: Sequence[int],
    seconds: float,
    *,
    compile_mode: str,
    cap_s: float,
) -> dict[str, object]:
    """images/s of each variant at each batch size, and what compiling cost."""
    started = time.monotonic()
    tower = load_tower(model_name, device)
    dtype = next(tower.parameters()).dtype
    side = tower.image_size[0] if isinstance(tower.image_size, tuple) else tower.image_size
    pixels = torch.randn(max(batches), 3, side, side)
    cuda = torch.device(device).type == "cuda"
    graphs = None if cuda else "not measured: CUDA graphs need a CUDA device"
    by_batch: dict[str, dict[str, float]] = {}
    for batch in batches:
        row = by_batch[str(batch)] = {}
        step = eager_step(tower, pixels[:batch], device, dtype)
        row["eager"] = images_per_s(step, batch, seconds)
        if graphs is None:
            try:
                step = cuda_graph_step(tower, pixels[:batch], device, dtype)
                row["cuda_graph"] = images_per_s(step, batch, seconds)
            except Exception as exc:  # recorded; the other variants still run
                graphs = f"failed at batch {batch}: {type(exc).__name__}: {exc}"
    compiled = torch.compile(tower, mode=compile_mode)
    compile_s: dict[str, float] = {}
    skipped: list[int] = []
    compile_error = None
    for batch in compile_order(batches):
        left_s = cap_s - (time.monotonic() - started)
        expected_s = max(compile_s.values(), default=0.0) + 3 * seconds
        if compile_error or left_s < expected_s or left_s <= 0:
            skipped.append(batch)
            continue
        step = eager_step(compiled, pixels[:batch], device, dtype)
        began = time.monotonic()
        try:
            step()  # compiles for this shape
        except Exception as exc:  # recorded; what was measured stands
            compile_error = f"failed at batch {batch}: {type(exc).__name__}: {exc}"
            skipped.append(batch)
            continue
        compile_s[str(batch)] = round(time.monotonic() - began, 1)
        by_batch[str(batch)]["compiled"] = images_per_s(step, batch, seconds)
    return {
        "cuda_graph": graphs,
        "compile_error": compile_error,
        "compile_mode": compile_mode,
        "compile_s": compile_s,
        "compile_skipped_batches": skipped,
        "cap_s": round(cap_s, 1),
        "by_batch": by_batch,
    }
