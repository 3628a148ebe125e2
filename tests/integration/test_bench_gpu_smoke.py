"""`bench/gpu.py`, the GPU benchmark, on a CPU: CI has no GPU, so its quick mode runs every
phase at tiny sizes (in-process batches, the tower's eager and compiled variants, the encoder
service through gRPC from client processes, the FAISS index and exact search) and these tests
hold its report to figures a reader could use. Without CUDA it must refuse, not pretend."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def run_gpu_bench(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "bench/gpu.py", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_quick_run_on_cpu_measures_every_phase(tmp_path: Path) -> None:
    output = tmp_path / "gpu.json"

    answer = run_gpu_bench("--device", "cpu", "--quick", "--output", str(output))

    assert answer.returncode == 0, answer.stderr[-3000:]
    report = json.loads(output.read_text())
    assert report["benchmark"] == "gpu"
    assert report["quick"] is True
    assert report["environment"]["device_name"] == "cpu"
    assert report["environment"]["torch"] == torch.__version__
    assert report["model"] == "clipmesh-tiny"

    assert set(report["inprocess"]["by_batch"]) == {"1", "4"}
    assert all(ips > 0 for ips in report["inprocess"]["by_batch"].values())

    served = report["served"]
    assert served["settings"]["device"] == "cpu"
    assert set(served["by_concurrency"]) == {"1", "4"}
    for level in served["by_concurrency"].values():
        assert level["requests"] > 0
        assert level["images_per_s"] > 0
        assert 0 < level["p50_ms"] <= level["p99_ms"]
        assert level["mean_batch"] >= 1
        assert level["server_cpu_ms_per_request"] > 0
        assert level["client_processes"] >= 1
    assert served["by_concurrency"]["4"]["client_processes"] >= 1
    assert served["best_images_per_s"] > 0
    assert served["skipped_concurrency"] == []
    batched = served["batched_requests"]
    assert batched["images_per_request"] == 4
    assert batched["images_per_s"] > 0
    assert batched["mean_batch"] >= 1

    search = report["search"]
    assert search["index"] == "ivf_sq8"
    assert search["vectors"] == 20_000
    assert search["faiss_cpu"]["recall_at_10"] >= 0.9
    assert search["faiss_cpu"]["batch_queries_per_s"] > 0
    assert 0 < search["faiss_cpu"]["p50_ms"] <= search["faiss_cpu"]["p99_ms"]
    assert search["faiss_gpu"].startswith(("unavailable:", "not measured:"))
    assert search["torch_exact"]["recall_at_10"] >= 0.99

    tower = report["tower"]
    assert tower["cuda_graph"].startswith("not measured")
    assert tower["compile_error"] is None
    assert set(tower["compile_s"]) == {"1", "4"}, tower["compile_skipped_batches"]
    for row in tower["by_batch"].values():
        assert row["eager"] > 0
        assert row["compiled"] > 0

    text = report["text"]
    assert set(text) == {"clipmesh-tiny", "clipmesh-tiny-xlm-roberta"}
    for model in text.values():
        assert model["texts_per_s"] > 0
        assert model["p50_ms"] > 0
        assert model["parameters"]["text"] > 0
    assert text["clipmesh-tiny-xlm-roberta"]["tokenizer"] == "xlm-roberta (trained here)"

    assert set(report["phases_s"]) == {"inprocess", "served", "search", "text", "tower_variants"}
    assert report["failed_phases"] == []
    assert 0 < report["elapsed_s"] < report["budget_s"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_without_cuda_it_says_so_writes_nothing_and_fails(tmp_path: Path) -> None:
    output = tmp_path / "gpu.json"

    answer = run_gpu_bench("--output", str(output))

    assert answer.returncode == 2
    assert "no CUDA device here" in answer.stderr
    assert "nothing written" in answer.stderr
    assert not output.exists()
