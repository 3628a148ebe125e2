"""Text towers: texts/s and one-text latency of each model's text tower, and what each model
costs in memory, with random weights of the real architecture (speed and size do not depend
on the weights).

    python bench/encoder_text.py [--seconds 6] [--large]

Models: the default ViT-B-32 (open_clip's English BPE tower) and xlm-roberta-base-ViT-B-32
(the multilingual one, a 12-layer XLM-R base); `--large` adds xlm-roberta-large-ViT-H-14
(24-layer XLM-R large beside a ViT-H/14; about 5 GB in fp32, minutes to initialise on a
small CPU). The Hugging Face towers read their shape from a directory holding the published
config.json of xlm-roberta-base (or -large) and an XLM-R tokenizer trained here
(tests/text_towers.py): every text is padded to the 77-token context, so which ids the tokens
are does not change the work. Each model is measured in its own process, so its memory is its
own. `bench/encoder.py` runs this too and writes the figures into encoder.json under `text`;
run alone, this updates that key only.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import RESULTS_DIR, console, print_table, write_results

MODELS = ("ViT-B-32", "xlm-roberta-base-ViT-B-32")
LARGE = "xlm-roberta-large-ViT-H-14"
BATCH = 32
# Search queries as editors type them, in both languages.
TEXTS = (
    "dragon boats race on the river",
    "龙舟竞渡",
    "a girl in hanfu under cherry blossoms",
    "穿汉服的女孩在樱花树下",
    "snow falls on a glacier at dawn",
    "清晨冰川上的落雪",
    "a red car drives down a wet street at night",
    "夜晚湿漉漉的街道上一辆红色的汽车",
)


def _tokenizer_dirs(root: Path, models: list[str]) -> dict[str, Path]:
    """A Hugging Face text-tower directory of the right shape for each model that needs one."""
    from tests.text_towers import TINY, XLM_ROBERTA_BASE, XLM_ROBERTA_LARGE, write_xlm_roberta_dir

    shapes = {
        "xlm-roberta-base-ViT-B-32": XLM_ROBERTA_BASE,
        "xlm-roberta-large-ViT-H-14": XLM_ROBERTA_LARGE,
        "clipmesh-tiny-xlm-roberta": TINY,
    }
    return {
        model: write_xlm_roberta_dir(root / model, shapes[model])
        for model in models
        if model in shapes
    }


def measure_model(
    model_name: str, device: str, seconds: float, tokenizer_dir: str | None, precision: str = "auto"
) -> dict[str, object]:
    """One model in this (fresh) process: load, memory, one-text latency, batch throughput."""
    import torch

    from clipmesh.encoder.model import load_model
    from clipmesh.encoder.weights import WeightsSpec

    rss_before = _rss_bytes()
    started = time.perf_counter()
    model = load_model(
        model_name,
        WeightsSpec.parse("random:0"),
        device=device,
        precision=precision,
        tokenizer_dir=Path(tokenizer_dir) if tokenizer_dir else None,
    )
    load_s = time.perf_counter() - started
    torch_model = model.towers.model
    parameters = {
        "text": sum(p.numel() for p in torch_model.text.parameters())
        if hasattr(torch_model, "text")
        else sum(
            p.numel()
            for name, p in torch_model.named_parameters()
            if not name.startswith("visual.")
        ),
        "image": sum(p.numel() for p in torch_model.visual.parameters()),
    }
    bytes_per = next(torch_model.parameters()).element_size()

    def embed(texts: list[str]) -> None:
        model.embed_tokens(model.tokenizer(texts))  # tokenise and embed, as the service does

    texts = list(TEXTS)
    embed(texts[:1])
    embed(texts * (BATCH // len(texts)))  # warm-up
    latencies = []
    deadline = time.perf_counter() + seconds / 2
    while time.perf_counter() < deadline or len(latencies) < 5:
        text = texts[len(latencies) % len(texts)]
        mark = time.perf_counter()
        embed([text])
        latencies.append(time.perf_counter() - mark)
    batch = texts * (BATCH // len(texts))
    done, mark = 0, time.perf_counter()
    while time.perf_counter() - mark < seconds / 2 or done < 2 * BATCH:
        embed(batch)
        done += len(batch)
    texts_per_s = done / (time.perf_counter() - mark)
    rss_serving = _rss_bytes() - rss_before
    if model.info.device.startswith("cuda"):
        peak_memory = torch.cuda.max_memory_allocated()
    else:
        peak_memory = None
    return {
        "precision": model.info.precision,
        "device": model.info.device,
        "tokenizer": "open_clip" if not tokenizer_dir else "xlm-roberta (trained here)",
        "texts_per_s": round(texts_per_s, 1),
        "batch": BATCH,
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "one_text_calls": len(latencies),
        "load_s": round(load_s, 1),
        "parameters": parameters,
        "weights_mib": round(sum(parameters.values()) * bytes_per / 2**20),
        # Resident memory while serving, and at its peak: random weights are drawn in fp32
        # and then cast, so a bf16 model's peak is its fp32 size.
        "rss_mib": round(rss_serving / 2**20),
        "peak_rss_mib": round((_peak_rss_bytes() - rss_before) / 2**20),
        # What the process held before loading (Python, torch, open_clip, transformers).
        "baseline_rss_mib": round(rss_before / 2**20),
        "cuda_peak_mib": round(peak_memory / 2**20) if peak_memory else None,
    }


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def text_phase(
    device: str,
    seconds: float,
    models: list[str],
    cap_s: float | None = None,
    precision: str = "auto",
) -> dict[str, dict]:
    """Each model's text figures, measured in a process of its own; with `cap_s`, the models
    not started within it are recorded as skipped."""
    results: dict[str, dict] = {}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="clipmesh-bench-tokenizers-") as root:
        dirs = _tokenizer_dirs(Path(root), models)
        for model in models:
            if cap_s is not None and time.monotonic() - started > cap_s:
                results[model] = {"skipped": f"the phase's {cap_s:.0f} s cap was spent"}
                continue
            directory = dirs.get(model)
            with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
                future = pool.submit(
                    measure_model,
                    model,
                    device,
                    seconds,
                    str(directory) if directory else None,
                    precision,
                )
                results[model] = future.result()
            console.print(f"text tower of {model}: {results[model]}")
    return results


def print_text_table(results: dict[str, dict]) -> None:
    print_table(
        "text towers (random weights, real shapes)",
        [
            "model",
            "precision",
            "texts/s (batch 32)",
            "p50 ms (1 text)",
            "params M (text/image)",
            "weights MiB",
            "RSS MiB (peak)",
        ],
        [
            [
                model,
                r["precision"],
                r["texts_per_s"],
                r["p50_ms"],
                f"{r['parameters']['text'] / 1e6:.1f} / {r['parameters']['image'] / 1e6:.1f}",
                r["weights_mib"],
                f"{r['rss_mib']} ({r['peak_rss_mib']})",
            ]
            for model, r in results.items()
            if "texts_per_s" in r
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seconds", type=float, default=6.0, help="measuring time per model")
    parser.add_argument("--large", action="store_true", help=f"also measure {LARGE}")
    parser.add_argument(
        "--precision",
        default="auto",
        help="auto (the service's default; written under `text`) or another precision "
        "(written under `text_<precision>`)",
    )
    args = parser.parse_args()
    models = [*MODELS, *([LARGE] if args.large else [])]
    results = text_phase(args.device, args.seconds, models, precision=args.precision)
    print_text_table(results)
    path = RESULTS_DIR / "encoder.json"
    existing = json.loads(path.read_text()) if path.exists() else {}
    existing.pop("benchmark", None)
    existing.pop("machine", None)
    measured_at = existing.pop("measured_at", None)
    if measured_at:
        existing.setdefault("images_measured_at", measured_at)
    key = "text" if args.precision == "auto" else f"text_{args.precision}"
    write_results("encoder", {**existing, key: results})


if __name__ == "__main__":
    main()
