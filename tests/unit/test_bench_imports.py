"""What the GPU benchmark imports: a GPU machine lent with PyTorch and no network gets only the
wheels in bench/gpu-wheels.txt, so bench/gpu.py, its load generators and the encoder service
it starts (bench/service_main.py) must not reach the other services' dependencies."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Installed here for the other services and absent there (PyAV alone is 36 MB of wheel).
NOT_ON_THE_GPU_MACHINE = (
    "av",
    "cv2",
    "msgspec",
    "nncf",
    "openvino",
    "opentimelineio",
    "psycopg",
    "pymilvus",
    "ray",
    "scenedetect",
)


def test_the_gpu_benchmark_and_the_encoder_service_import_none_of_the_others_packages() -> None:
    modules = (
        "bench.gpu",
        "bench.encoder_load",
        "bench.service_main",
        "clipmesh.encoder.config",
        "clipmesh.encoder.server",
    )
    probe = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"print(json.dumps([m for m in {NOT_ON_THE_GPU_MACHINE!r} if m in sys.modules]))\n"
    )
    answer = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(answer.stdout.strip().splitlines()[-1]) == []


def test_the_gpu_wheels_cover_what_the_encoder_needs_beyond_pytorch() -> None:
    wanted = {
        line.split("==")[0].lower()
        for line in (ROOT / "bench" / "gpu-wheels.txt").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert {"open_clip_torch", "faiss-cpu", "grpcio", "grpcio-health-checking"} <= wanted
    assert not wanted & {"torch", "torchvision", "numpy", "av"}
