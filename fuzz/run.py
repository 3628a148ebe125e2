"""Runs the harnesses one after another, each in its own process under libFuzzer's limits.

Each harness runs for `--seconds` or `--runs` inputs, whichever comes first, with its resident
memory capped (`-rss_limit_mb`) and each input's time capped (`-timeout`). New inputs go to
`build/fuzz/<harness>/corpus/` (kept between runs, so `make fuzz` builds on earlier runs),
crashes, hangs and out-of-memory inputs to `build/fuzz/<harness>/artifacts/`, and the figures
to `bench/results/fuzz.json`. Exits 1 when any harness found something.

    python -m fuzz.run --seconds 60                 # every harness, 60 s each
    python -m fuzz.run --seconds 10 --runs 2000 script filters
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from fuzz.common import CORPUS_DIR, FUZZ_DIR, REGRESSIONS_DIR

# Each harness and the longest one input may take before it counts as a hang. A script of
# 16 K characters parses in about 0.2 s; the quadratic bugs took 5 s and more.
HARNESSES = {"images": 10, "video_probe": 10, "script": 3, "filters": 10}
REPO = FUZZ_DIR.parent
WORK_DIR = REPO / "build" / "fuzz"
ARTIFACT_KINDS = ("crash-", "timeout-", "oom-", "leak-", "slow-unit-")
_STAT = re.compile(r"^stat::(\w+):\s+(\d+)", re.MULTILINE)
# Starting Python, importing PyAV or torch and loading the seeds, then writing the stats.
_STARTUP_GRACE_S = 120


@dataclass(frozen=True)
class HarnessRun:
    """What one harness's run did.

    Attributes:
        harness: Its name (`fuzz/fuzz_<harness>.py`).
        runs: Inputs executed.
        exec_per_s: libFuzzer's average executions per second.
        seconds: Wall time of the process, start-up included.
        new_units: Inputs added to the corpus for new coverage.
        peak_rss_mb: Peak resident memory.
        timeout_s: The per-input time limit it ran under.
        exit_code: The process's exit status (0: nothing found).
        artifacts: Paths of the crash, timeout and out-of-memory inputs it saved.
        log: Where its full output is.
    """

    harness: str
    runs: int
    exec_per_s: int
    seconds: float
    new_units: int
    peak_rss_mb: int
    timeout_s: int
    exit_code: int
    artifacts: list[str]
    log: str

    @property
    def found(self) -> bool:
        """Whether the run stopped on a finding."""
        return self.exit_code != 0 or bool(self.artifacts)


def _with_own_peak_rss(command: list[str]) -> list[str]:
    """`command`, started through a shell that forks it rather than exec'ing it.

    libFuzzer's memory cap reads the peak RSS (`getrusage`), and Linux carries a process's
    peak over fork and exec: a fuzzer started straight from a large parent (a pytest process
    that has loaded models: 3 GB) would begin "out of memory". A child forked by the small
    shell starts its count afresh.
    """
    return ["/bin/sh", "-c", '"$@"; exit $?', "sh", *command]


def run_harness(
    harness: str,
    *,
    seconds: int,
    runs: int = 0,
    work_dir: Path = WORK_DIR,
    rss_limit_mb: int = 2048,
    timeout_s: int | None = None,
    seed: int = 0,
) -> HarnessRun:
    """Fuzzes one harness from its seeds; returns what the run did.

    Args:
        harness: One of `HARNESSES`.
        seconds: Longest the fuzzing may run (libFuzzer's `-max_total_time`).
        runs: Most inputs to run; 0 for no limit.
        work_dir: Holds `<harness>/corpus`, `<harness>/artifacts` and `<harness>/fuzz.log`.
        rss_limit_mb: Memory cap; an input that takes more is an out-of-memory finding.
        timeout_s: Longest one input may take, else the harness's own (`HARNESSES`); a
            slower input is a timeout finding.
        seed: libFuzzer's random seed; 0 for a fresh one each run.
    """
    timeout_s = timeout_s or HARNESSES[harness]
    folder = work_dir / harness
    corpus, artifacts, scratch = folder / "corpus", folder / "artifacts", folder / "tmp"
    for path in (corpus, artifacts, scratch):
        path.mkdir(parents=True, exist_ok=True)
    before = set(artifacts.iterdir())
    command = [
        sys.executable,
        "-m",
        f"fuzz.fuzz_{harness}",
        f"-max_total_time={seconds}",
        f"-runs={runs or -1}",
        f"-rss_limit_mb={rss_limit_mb}",
        f"-timeout={timeout_s}",
        f"-artifact_prefix={artifacts}/",
        "-print_final_stats=1",
        f"-seed={seed}",
        # New inputs land in the first folder; the seeds and past findings stay as they are.
        str(corpus),
        *(
            str(seeds / harness)
            for seeds in (CORPUS_DIR, REGRESSIONS_DIR)
            if (seeds / harness).is_dir()
        ),
    ]
    env = {**os.environ, "TMPDIR": str(scratch)}  # `-m` from the repo root finds `fuzz`
    log = folder / "fuzz.log"
    started = time.monotonic()
    with log.open("wb") as output:
        # Its own process group: on a timeout the fuzzer under the shell is killed too.
        process = subprocess.Popen(
            _with_own_peak_rss(command),
            cwd=REPO,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            process.wait(timeout=seconds + timeout_s + _STARTUP_GRACE_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise
    elapsed_s = time.monotonic() - started
    stats = {name: int(value) for name, value in _STAT.findall(log.read_text(errors="replace"))}
    found = sorted(
        _shown(path)
        for path in set(artifacts.iterdir()) - before
        if path.name.startswith(ARTIFACT_KINDS)
    )
    return HarnessRun(
        harness=harness,
        runs=stats.get("number_of_executed_units", 0),
        exec_per_s=stats.get("average_exec_per_sec", 0),
        seconds=round(elapsed_s, 1),
        new_units=stats.get("new_units_added", 0),
        peak_rss_mb=stats.get("peak_rss_mb", 0),
        timeout_s=timeout_s,
        exit_code=process.returncode,
        artifacts=found,
        log=_shown(log),
    )


def _shown(path: Path) -> str:
    """`path` relative to the repository when inside it, as the results file names it."""
    return str(path.relative_to(REPO) if path.is_relative_to(REPO) else path)


def main(argv: list[str] | None = None) -> int:
    """Runs the chosen harnesses, prints a table, writes bench/results/fuzz.json."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("harnesses", nargs="*", help=f"some of {', '.join(HARNESSES)} (all)")
    parser.add_argument("--seconds", type=int, default=60, help="fuzzing time per harness")
    parser.add_argument("--runs", type=int, default=0, help="most inputs per harness (0: any)")
    parser.add_argument("--rss-limit-mb", type=int, default=2048)
    parser.add_argument("--timeout-s", type=int, help="longest one input may take (per harness)")
    args = parser.parse_args(argv)
    unknown = set(args.harnesses) - set(HARNESSES)
    if unknown:
        parser.error(f"unknown harnesses {sorted(unknown)}; choose from {list(HARNESSES)}")

    from bench.common import print_table, write_results

    results = []
    for harness in args.harnesses or HARNESSES:
        result = run_harness(
            harness,
            seconds=args.seconds,
            runs=args.runs,
            rss_limit_mb=args.rss_limit_mb,
            timeout_s=args.timeout_s,
        )
        results.append(result)
        verdict = f"FOUND: see {result.log}" if result.found else "ok"
        print(f"{harness}: {result.runs} runs, {result.exec_per_s} exec/s, {verdict}", flush=True)
    print_table(
        f"Fuzzing, {args.seconds} s per harness",
        ["harness", "runs", "exec/s", "new units", "peak RSS MB", "findings"],
        [
            [r.harness, r.runs, r.exec_per_s, r.new_units, r.peak_rss_mb, len(r.artifacts)]
            for r in results
        ],
    )
    write_results(
        "fuzz",
        {
            "seconds_per_harness": args.seconds,
            "runs_limit": args.runs,
            "rss_limit_mb": args.rss_limit_mb,
            "harnesses": {
                r.harness: {k: v for k, v in asdict(r).items() if k not in ("harness", "log")}
                for r in results
            },
        },
    )
    return 1 if any(r.found for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
