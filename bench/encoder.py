"""Encoder benchmark: images/s and latency through gRPC at several concurrencies, against the
same model in-process at its best batch size (the ceiling the service should approach), and one
image at a time served against the bare model (bench/encoder_batch1.py).

    python bench/encoder.py [--model ViT-B-32] [--seconds 12] [--device auto]

Each gRPC request carries one 256×256 JPEG (a search query, or a keyframe thumbnail), so any
batching is the server's doing. Random weights are fine: speed does not depend on them.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import console, latency_summary, print_table, service_process, write_results
from bench.encoder_batch1 import BareModel, batch1_comparison
from bench.encoder_inprocess import BATCH_SIZES, WEIGHTS, in_process
from bench.encoder_int8 import int8_phase
from bench.encoder_load import closed_loop
from bench.encoder_text import MODELS as TEXT_MODELS
from bench.encoder_text import print_text_table, text_phase

CONCURRENCY = (1, 8, 32, 64)


async def load(target: str, concurrency: int, seconds: float, warmup_s: float) -> dict[str, float]:
    """`concurrency` callers each sending one image per request, back to back."""
    measure_from = time.time() + warmup_s
    latencies = await closed_loop(
        target, concurrency, measure_from=measure_from, measure_until=measure_from + seconds
    )
    return {"images_per_s": round(len(latencies) / seconds, 1), **latency_summary(latencies)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seconds", type=float, default=12.0, help="measuring time per load level")
    parser.add_argument("--inprocess-seconds", type=float, default=5.0)
    parser.add_argument(
        "--max-batch",
        type=int,
        default=16,
        help="server batch cap (the service's default); below the top concurrency so the next "
        "batch queues (and is preprocessed) while the current one computes",
    )
    args = parser.parse_args()

    baseline = in_process(args.model, args.device, args.inprocess_seconds)
    text = text_phase(args.device, args.inprocess_seconds, list(TEXT_MODELS))
    int8 = {"skipped": "int8 runs on CPU only"}
    if baseline["device"] == "cpu":
        int8 = int8_phase(args.model, WEIGHTS, args.inprocess_seconds, BATCH_SIZES)
        console.print(f"int8: {int8}")
    # The service's batching defaults otherwise: no wait for company (max_queue_delay_ms 0).
    env = {
        "CLIPMESH_ENCODER_MODEL": args.model,
        "CLIPMESH_ENCODER_WEIGHTS": WEIGHTS,
        "CLIPMESH_ENCODER_DEVICE": args.device,
        "CLIPMESH_ENCODER_MAX_BATCH": str(args.max_batch),
    }
    grpc_results = {}
    bare = BareModel(args.model, WEIGHTS, args.device)
    with service_process("encoder", env) as service:
        try:
            batch1 = batch1_comparison(bare, service.target, service.metrics_url)
        finally:
            bare.close()
        for concurrency in CONCURRENCY:
            result = asyncio.run(load(service.target, concurrency, args.seconds, warmup_s=3.0))
            grpc_results[str(concurrency)] = result
            console.print(f"gRPC concurrency {concurrency}: {result}")

    best = baseline["best"]
    served_32 = grpc_results["32"]["images_per_s"]
    rows = [[f"in-process, batch {b}", ips, "", "", ""] for b, ips in baseline["by_batch"].items()]
    rows += [
        [
            f"gRPC, concurrency {c}",
            r["images_per_s"],
            r["p50_ms"],
            r["p99_ms"],
            f"{r['images_per_s'] / best:.0%}",
        ]
        for c, r in grpc_results.items()
    ]
    if "images_per_s" in int8:
        rows += [
            [f"in-process int8 ({int8['runtime']}), batch {b}", ips, "", "", f"{ips / best:.0%}"]
            for b, ips in int8["images_per_s_by_batch"].items()
        ]
        same = int8["baseline_precision"]
        rows.append(
            [
                f"in-process {same} beside int8, batch {int8['best_batch']}",
                int8[f"{same}_images_per_s_same_batch"],
                "",
                "",
                f"int8 ×{int8[f'speedup_vs_{same}']}",
            ]
        )
        per_core = int8["per_core_images_per_cpu_s_at_best_batch"]
        rows.append(
            [
                f"one thread, per CPU-second: int8 / {same}, batch {int8['best_batch']}",
                f"{per_core['int8']} / {per_core[same]}",
                "",
                "",
                f"int8 ×{int8[f'per_core_speedup_vs_{same}']}",
            ]
        )
    rows += [
        ["batch 1: bare model (decode + embed, own process)", "", batch1["bare_p50_ms"], "", ""],
        [
            "batch 1: served, concurrency 1 (same rounds)",
            "",
            batch1["served_p50_ms"],
            "",
            f"served/bare ×{batch1['served_vs_bare_batch1']}",
        ],
    ]
    print_table(
        f"encoder {args.model} on {baseline['device']} ({baseline['precision']})",
        ["mode", "images/s", "p50 ms", "p99 ms", "of in-process best"],
        rows,
    )
    print_text_table(text)
    targets = {
        "grpc_32_images_per_s_at_least_45": served_32 >= 45,
        "served_over_inprocess_at_least_0_85": served_32 / best >= 0.85,
        "grpc_1_p50_ms_at_most_60": grpc_results["1"]["p50_ms"] <= 60,
        "served_vs_bare_batch1_at_most_1_15": batch1["served_vs_bare_batch1"] <= 1.15,
    }
    write_results(
        "encoder",
        {
            "model": args.model,
            "device": baseline["device"],
            "precision": baseline["precision"],
            "weights": WEIGHTS,
            "server_max_batch": args.max_batch,
            "inprocess_images_per_s_by_batch": baseline["by_batch"],
            "inprocess_best_batch": baseline["best_batch"],
            "inprocess_best_images_per_s": best,
            "grpc": grpc_results,
            "served_over_inprocess_at_32": round(served_32 / best, 3),
            "served_vs_bare_batch1": batch1["served_vs_bare_batch1"],
            "batch1": batch1,
            "matmul_peak_gflops": baseline["matmul_peak_gflops"],
            "int8": int8,
            "text": text,
            "targets_met": targets,
        },
    )


if __name__ == "__main__":
    main()
