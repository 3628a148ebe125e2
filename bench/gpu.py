"""GPU benchmark: the encoder on CUDA in-process (fp16, batch 1–256: eager, CUDA graphs,
torch.compile) and served through gRPC (one image per request, concurrency 1–256), and search
at 1M vectors (FAISS on the CPU cores and, where it has GPU support, the GPU; exact search by
PyTorch on the GPU), into bench/results/gpu.json with the device's name.

    python bench/gpu.py                          # on a CUDA machine (make bench-gpu), < 8 min
    python bench/gpu.py --device cpu --quick     # every code path at tiny sizes, on a CPU

One prepared run that fits one short call whenever a GPU is lent: every phase has a cap, the
optional ones (CUDA graphs, torch.compile) run last in the time left, and whatever a cap cut
short or skipped is named in the JSON. Without CUDA (and without `--device cpu`) it measures
nothing, writes nothing, says why and exits 2. Only a full CUDA run writes bench/results/gpu.json;
other runs write bench/results/gpu-check.json.tmp (ignored by git) unless --output says where.

Random weights (seeded): speed does not depend on them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    RESULTS_DIR,
    console,
    cpu_seconds,
    latency_summary,
    print_table,
    service_process,
    write_results,
)
from bench.encoder_inprocess import WEIGHTS, in_process
from bench.encoder_load import closed_loop
from bench.encoder_text import LARGE as LARGE_TEXT_MODEL
from bench.encoder_text import MODELS as TEXT_MODELS
from bench.encoder_text import print_text_table, text_phase
from bench.gpu_search import search_phase
from bench.gpu_towers import tower_variants
from clipmesh.encoder.model import choose_precision

NO_CUDA_EXIT = 2
PHASES = ("inprocess", "served", "search", "text", "tower")
INPROCESS_KEYS = ("by_batch", "best_batch", "best", "error")
SERVED_COLUMNS = (
    "images_per_s",
    "p50_ms",
    "p99_ms",
    "mean_batch",
    "server_cpu_ms_per_request",
    "client_processes",
    "gpu_utilization_pct",
)
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Sizes:
    """What one run measures, and the cap of each phase in seconds."""

    model: str
    batches: tuple[int, ...]
    concurrency: tuple[int, ...]
    inprocess_s: float  # measuring time per batch size and variant
    served_s: float  # measuring time per concurrency
    warmup_s: float  # client start and warm-up before each served window
    batched_requests: tuple[int, int]  # (concurrency, images per request) of the extra level
    search_vectors: int
    search_queries: int
    served_cap_s: float
    search_cap_s: float
    variants_cap_s: float
    text_models: tuple[str, ...]  # each model's text tower and memory (bench/encoder_text.py)
    text_s: float  # measuring time per model
    text_cap_s: float


FULL = Sizes(
    model="ViT-B-32",
    batches=(1, 8, 32, 64, 128, 256),
    concurrency=(1, 8, 32, 64, 128, 256),
    inprocess_s=2.0,
    served_s=6.0,
    warmup_s=3.0,
    batched_requests=(16, 32),
    search_vectors=1_000_000,
    search_queries=1000,
    served_cap_s=150,
    search_cap_s=150,
    variants_cap_s=150,
    text_models=(*TEXT_MODELS, LARGE_TEXT_MODEL),
    text_s=4.0,
    text_cap_s=120,
)
QUICK = Sizes(
    model="clipmesh-tiny",
    batches=(1, 4),
    concurrency=(1, 4),
    inprocess_s=0.3,
    served_s=1.0,
    warmup_s=2.0,
    batched_requests=(2, 4),
    search_vectors=20_000,
    search_queries=50,
    served_cap_s=120,
    search_cap_s=60,
    variants_cap_s=120,
    text_models=("clipmesh-tiny", "clipmesh-tiny-xlm-roberta"),
    text_s=0.5,
    text_cap_s=120,
)


class Budget:
    """The run's time: `left_s()` of the whole, and each phase's own elapsed time."""

    def __init__(self, total_s: float) -> None:
        self.total_s = total_s
        self.started = time.monotonic()
        self.phases_s: dict[str, float] = {}

    def left_s(self) -> float:
        return self.total_s - (time.monotonic() - self.started)

    def cap_s(self, phase_cap_s: float) -> float:
        """A phase's cap, cut to what is left of the whole."""
        return max(0.0, min(phase_cap_s, self.left_s()))

    def run(self, phase: str, measure: Callable[[], dict[str, object]]) -> dict[str, object]:
        """Runs one phase, timed. A phase that fails is recorded as its error and the run goes
        on: one call on a lent GPU must bring back whatever did work."""
        started = time.monotonic()
        try:
            return measure()
        except Exception as exc:
            console.print_exception()
            return {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            self.phases_s[phase] = round(time.monotonic() - started, 1)


def environment(device: str) -> dict[str, object]:
    """The device and the software the figures came from."""
    info: dict[str, object] = {
        "device": device,
        "torch": torch.__version__,
        "cuda_runtime": torch.version.cuda,
    }
    if device.startswith("cuda"):
        index = torch.device(device).index or 0
        props = torch.cuda.get_device_properties(index)
        info |= {
            "device_name": torch.cuda.get_device_name(index),
            "compute_capability": f"{props.major}.{props.minor}",
            "memory_gib": round(props.total_memory / 2**30, 1),
            "multiprocessors": props.multi_processor_count,
            "cudnn": torch.backends.cudnn.version(),
            "driver": _nvidia_smi("driver_version"),
        }
    else:
        info["device_name"] = "cpu"
    return info


def _nvidia_smi(field: str) -> str:
    if shutil.which("nvidia-smi") is None:
        return ""
    answer = subprocess.run(
        ["nvidia-smi", f"--query-gpu={field}", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    return answer.stdout.strip().splitlines()[0] if answer.returncode == 0 else ""


def _batch_size_totals(metrics_url: str) -> tuple[float, float]:
    """(sum, count) of the encoder's image batch sizes so far, from its /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
    totals = {"sum": 0.0, "count": 0.0}
    for family in text_string_to_metric_families(text):
        if family.name == "clipmesh_encoder_batch_size":
            for sample in family.samples:
                kind = sample.name.rsplit("_", 1)[-1]
                if kind in totals and sample.labels.get("modality") == "image":
                    totals[kind] = sample.value
    return totals["sum"], totals["count"]


def _sleep_until(wall_s: float) -> None:
    time.sleep(max(0.0, wall_s - time.time()))


def served_level(
    service, concurrency: int, processes: int, sizes: Sizes, images_per_request: int = 1
) -> dict[str, object]:
    """`concurrency` callers spread over `processes` client processes (bench/encoder_load.py);
    their windows are the same wall-clock seconds."""
    measure_from = time.time() + sizes.warmup_s
    measure_until = measure_from + sizes.served_s
    shares = [concurrency // processes + (i < concurrency % processes) for i in range(processes)]
    clients = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.encoder_load",
                f"--target={service.target}",
                f"--callers={callers}",
                f"--measure-from={measure_from}",
                f"--measure-until={measure_until}",
                f"--first-image={i * 7}",
                f"--images-per-request={images_per_request}",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
        )
        for i, callers in enumerate(shares)
    ]
    _sleep_until(measure_from)
    server_cpu, batches = cpu_seconds(service.pid), _batch_size_totals(service.metrics_url)
    _sleep_until(measure_from + sizes.served_s / 2)
    gpu_util = _nvidia_smi("utilization.gpu")
    _sleep_until(measure_until)
    server_cpu = cpu_seconds(service.pid) - server_cpu
    batch_sum, batch_count = _batch_size_totals(service.metrics_url)
    latencies: list[float] = []
    client_cpu_s: list[float] = []
    for client in clients:
        out, _ = client.communicate(timeout=120)
        if client.returncode != 0:
            raise RuntimeError(f"client process exited {client.returncode}")
        report = json.loads(out)
        latencies += report["latencies_s"]
        client_cpu_s.append(report["cpu_s"])
    requests = len(latencies)
    batches_run = batch_count - batches[1]
    return {
        "images_per_s": round(requests * images_per_request / sizes.served_s, 1),
        **(latency_summary(latencies) if latencies else {"p50_ms": None, "p99_ms": None}),
        "requests": requests,
        "client_processes": processes,
        "client_cpu_share_max": round(max(client_cpu_s) / (sizes.warmup_s + sizes.served_s), 2),
        "server_cpu_share": round(server_cpu / sizes.served_s, 2),
        "server_cpu_ms_per_request": round(1000 * server_cpu / max(requests, 1), 3),
        "mean_batch": round((batch_sum - batches[0]) / batches_run, 1) if batches_run else None,
        "gpu_utilization_pct": int(gpu_util) if gpu_util.isdigit() else None,
    }


def served(device: str, precision: str, sizes: Sizes, args, budget: Budget) -> dict[str, object]:
    """The encoder service process at each concurrency, while the phase's cap allows."""
    settings = {
        "CLIPMESH_ENCODER_MODEL": sizes.model,
        "CLIPMESH_ENCODER_WEIGHTS": WEIGHTS,
        "CLIPMESH_ENCODER_DEVICE": device,
        "CLIPMESH_ENCODER_PRECISION": precision,
        "CLIPMESH_ENCODER_MAX_BATCH": str(max(sizes.batches)),
        "CLIPMESH_ENCODER_PREPROCESS_THREADS": str(args.preprocess_threads),
        "CLIPMESH_ENCODER_LOG_LEVEL": "WARNING",
    }
    deadline = time.monotonic() + budget.cap_s(sizes.served_cap_s)
    by_concurrency: dict[str, object] = {}
    skipped: list[int] = []
    with service_process("encoder", settings, startup_timeout_s=120, via_cli=False) as service:
        asyncio.run(  # the first batches on a fresh process (CUDA kernels, allocator) are slow
            closed_loop(service.target, 8, measure_from=time.time(), measure_until=time.time() + 2)
        )
        for concurrency in sizes.concurrency:
            if time.monotonic() + sizes.warmup_s + sizes.served_s + 5 > deadline:
                skipped.append(concurrency)
                continue
            processes = min(concurrency, args.client_processes)
            level = served_level(service, concurrency, processes, sizes)
            by_concurrency[str(concurrency)] = level
            console.print(f"served, concurrency {concurrency}: {level}")
        # What the service gives once the per-call cost is shared by many images (as ingest
        # sends keyframes): the ceiling that one-image calls are compared with.
        concurrency, per_request = sizes.batched_requests
        if time.monotonic() + sizes.warmup_s + sizes.served_s + 5 > deadline:
            batched: dict[str, object] | str = "not measured: the served phase's cap had passed"
        else:
            processes = min(concurrency, args.client_processes)
            batched = served_level(service, concurrency, processes, sizes, per_request)
            batched |= {"concurrency": concurrency, "images_per_request": per_request}
            console.print(f"served, {per_request} images per request: {batched}")
    best = max((r["images_per_s"] for r in by_concurrency.values()), default=0.0)
    return {
        "settings": {k.removeprefix("CLIPMESH_ENCODER_").lower(): v for k, v in settings.items()},
        "images_per_request": 1,
        "by_concurrency": by_concurrency,
        "skipped_concurrency": skipped,
        "best_images_per_s": best,
        "batched_requests": batched,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a check, not figures")
    parser.add_argument("--budget-s", type=float, default=450, help="the whole run's cap")
    parser.add_argument("--compile-mode", default="reduce-overhead")
    parser.add_argument("--no-variants", action="store_true", help="skip CUDA graphs and compile")
    parser.add_argument(
        "--client-processes",
        type=int,
        default=max(1, min(8, (os.cpu_count() or 2) // 2)),
        help="load-generating processes (one Python client tops out at a few thousand calls/s)",
    )
    parser.add_argument("--preprocess-threads", type=int, default=4)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()

    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        built = f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "CPU-only"
        print(
            f"bench-gpu: no CUDA device here (torch {torch.__version__}, {built}); nothing "
            "measured, nothing written. `python bench/gpu.py --device cpu --quick` checks the "
            "script itself on a CPU.",
            file=sys.stderr,
        )
        sys.exit(NO_CUDA_EXIT)
    sizes = QUICK if args.quick else FULL
    output = args.output or (
        RESULTS_DIR / "gpu.json" if cuda and not args.quick else RESULTS_DIR / "gpu-check.json.tmp"
    )
    budget = Budget(args.budget_s)
    results: dict[str, object] = {
        "quick": args.quick,
        "environment": environment(args.device),
        "model": sizes.model,
        "weights": WEIGHTS,
        "precision": choose_precision("auto", torch.device(args.device)),
    }
    console.print(results["environment"])
    inprocess = budget.run(
        "inprocess",
        lambda: in_process(sizes.model, args.device, sizes.inprocess_s, batch_sizes=sizes.batches),
    )
    results["inprocess"] = {k: v for k, v in inprocess.items() if k in INPROCESS_KEYS}
    if cuda:
        torch.cuda.empty_cache()
    results["served"] = budget.run(
        "served", lambda: served(args.device, results["precision"], sizes, args, budget)
    )
    results["search"] = budget.run(
        "search",
        lambda: search_phase(
            sizes.search_vectors,
            sizes.search_queries,
            args.device,
            cap_s=budget.cap_s(sizes.search_cap_s),
        ),
    )
    results["text"] = budget.run(
        "text",
        lambda: text_phase(
            args.device, sizes.text_s, list(sizes.text_models), cap_s=budget.cap_s(sizes.text_cap_s)
        ),
    )
    if cuda:
        torch.cuda.empty_cache()
    if args.no_variants:
        results["tower"] = {"skipped": "--no-variants"}
    else:
        results["tower"] = budget.run(
            "tower_variants",
            lambda: tower_variants(
                sizes.model,
                args.device,
                sizes.batches,
                sizes.inprocess_s,
                compile_mode=args.compile_mode,
                cap_s=budget.cap_s(sizes.variants_cap_s),
            ),
        )

    elapsed_s = round(time.monotonic() - budget.started, 1)
    failed = [phase for phase in PHASES if "error" in results.get(phase, {})]
    results |= {
        "phases_s": budget.phases_s,
        "elapsed_s": elapsed_s,
        "budget_s": args.budget_s,
        "failed_phases": failed,
        "targets_met": {
            "served_images_per_s_at_least_3000": results["served"].get("best_images_per_s", 0)
            >= 3000,
            "finished_within_8_min": elapsed_s < 480,
        },
    }
    _print_tables(results)
    write_results("gpu", results, path=output)
    if failed:
        sys.exit(f"bench-gpu: phase(s) failed: {', '.join(failed)} (their errors are in {output})")


def _print_tables(results: dict[str, object]) -> None:
    env = results["environment"]
    title = f"encoder {results['model']} on {env['device_name']} ({results['precision']})"
    tower = results["tower"]
    rows = []
    for batch, ips in results["inprocess"].get("by_batch", {}).items():
        variants = tower.get("by_batch", {}).get(str(batch), {})
        rows.append(
            [
                batch,
                ips,
                variants.get("eager", ""),
                variants.get("cuda_graph", ""),
                variants.get("compiled", ""),
            ]
        )
    print_table(
        f"{title}: in-process images/s",
        ["batch", "service path", "tower eager", "tower CUDA graph", "tower compiled"],
        rows,
    )
    rows = [
        [c] + [r[k] for k in SERVED_COLUMNS]
        for c, r in results["served"].get("by_concurrency", {}).items()
    ]
    batched = results["served"].get("batched_requests")
    if isinstance(batched, dict):
        label = f"{batched['concurrency']} × {batched['images_per_request']} images"
        rows.append([label] + [batched[k] for k in SERVED_COLUMNS])
    print_table(
        f"{title}: served through gRPC, one image per request",
        [
            "concurrency",
            "images/s",
            "p50 ms",
            "p99 ms",
            "mean batch",
            "server CPU ms/req",
            "clients",
            "GPU %",
        ],
        rows,
    )
    search = results["search"]
    console.print(json.dumps(search, indent=1))
    if "error" not in results["text"]:
        print_text_table(results["text"])
    console.print(f"phases (s): {results['phases_s']}; elapsed {results['elapsed_s']} s")


if __name__ == "__main__":
    main()
