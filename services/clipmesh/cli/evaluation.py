"""`clipmesh eval QUERIES.jsonl`: retrieval quality and latency over a labelled query set.

A team keeps a small file of queries it knows the answers to, each with a category of its own
(costume, region, scene type, people, …), and runs it before a rollout: recall@1/5/10, the
share of found videos whose moment holds the expected time, and latency, overall and per
category, show whether new weights or index settings help, and whether retrieval is fair
across categories. Text queries have a language (given as `lang`, else guessed from the
script) and may share a `pair` key with the same query in other languages, so the report puts
languages side by side: after mounting multilingual weights a team sees whether Chinese
queries are served as well as English ones, and which concepts one language misses. The
file's format (one JSON query a line: an image, a text or a `frame` of a video, and the
expected videos by id, title or file name) is in the README's "Measuring retrieval"; a
`frame` query is cropped a tenth off each side and re-compressed, the way a still from an
edit arrives.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import click
import numpy as np
from rich.console import Console
from rich.table import Table

from clipmesh.cli.connection import target_option
from clipmesh.demo.library import still_from
from clipmesh.runtime.errors import ServiceError
from clipmesh.runtime.languages import LANGUAGE_SCRIPTS, likely_language
from clipmesh_client import Client, ClipmeshError, SearchResult, VideoHit

RECALL_AT = (1, 5, 10)
_KINDS = ("image", "frame", "text")
# The language group of image and frame queries in the per-language report.
IMAGE_LANGUAGE = "image"


class QueryFileError(ValueError):
    """The query file is malformed; the message names the line and the field."""


@dataclass(frozen=True)
class EvalQuery:
    """One labelled query.

    Attributes:
        query_id: The query's name in reports.
        category: The user's category label ("" groups as "uncategorised").
        kind: "image", "frame" or "text".
        text: The text of a text query.
        image: The encoded image of an image or frame query.
        expected: Names of the videos that should be found (id, title or file name).
        expected_time_s: Where in an expected video the answer is, when known.
        lang: ISO 639-1 code of a text query's language; "" for image and frame queries.
        lang_inferred: Whether `lang` was guessed from the text's script, not given.
        pair: The concept this query shares with its versions in other languages; "" alone.
    """

    query_id: str
    category: str
    kind: str
    expected: tuple[str, ...]
    text: str = ""
    image: bytes = b""
    expected_time_s: float | None = None
    lang: str = ""
    lang_inferred: bool = False
    pair: str = ""

    @property
    def language(self) -> str:
        """The query's group in the per-language report: its language, or "image"."""
        return self.lang if self.kind == "text" else IMAGE_LANGUAGE


@dataclass(frozen=True)
class QueryOutcome:
    """What one query returned, judged against its labels.

    Attributes:
        query: The query.
        rank: 1-based rank of the first expected video among the hits; None when absent.
        found: Per expected video, its rank (None when absent) — for recall with several.
        moment_hit: Whether a moment of the first expected hit contains the expected time;
            None when the query has no expected time or the video was not found.
        latency_ms: Wall time of the call as the client saw it.
        error: The call's error, one line; "" when it succeeded.
        warnings: What the service warned about (random weights, degraded results).
    """

    query: EvalQuery
    rank: int | None
    found: tuple[int | None, ...]
    moment_hit: bool | None
    latency_ms: float
    error: str = ""
    warnings: tuple[str, ...] = ()


@dataclass
class GroupReport:
    """Figures for a set of queries (all of them, or one category)."""

    queries: int = 0
    errors: int = 0
    recall: dict[int, float] = field(default_factory=dict)
    mrr: float = 0.0
    moment_hit_share: float | None = None
    moment_judged: int = 0
    latency_p50_ms: float = 0.0
    latency_p95_ms: float = 0.0
    latency_max_ms: float = 0.0

    def as_json(self) -> dict[str, object]:
        return {
            "queries": self.queries,
            "errors": self.errors,
            **{f"recall@{k}": round(v, 4) for k, v in self.recall.items()},
            "mrr": round(self.mrr, 4),
            "moment_hit_share": (
                None if self.moment_hit_share is None else round(self.moment_hit_share, 4)
            ),
            "moment_judged": self.moment_judged,
            "latency_p50_ms": round(self.latency_p50_ms, 2),
            "latency_p95_ms": round(self.latency_p95_ms, 2),
            "latency_max_ms": round(self.latency_max_ms, 2),
        }


def load_queries(path: Path, *, media_root: Path | None = None) -> list[EvalQuery]:
    """Reads and checks a JSONL query file; a bad line raises QueryFileError naming it."""
    root = media_root or path.parent
    queries: list[EvalQuery] = []
    seen: set[str] = set()
    pairs: dict[str, dict[str, str]] = {}  # pair → language → where its query is
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise QueryFileError(f"{path}: cannot read: {exc}") from exc
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{path.name}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise QueryFileError(f"{where}: not JSON: {exc.msg}") from exc
        if not isinstance(record, dict):
            raise QueryFileError(f"{where}: a line must be a JSON object")
        query = _parse_query(record, where, root, default_id=f"line-{number}")
        if query.query_id in seen:
            raise QueryFileError(f"{where}: id {query.query_id!r} is used twice")
        seen.add(query.query_id)
        if query.pair:
            _join_pair(pairs.setdefault(query.pair, {}), query, where)
        queries.append(query)
    if not queries:
        raise QueryFileError(f"{path}: no queries")
    for key, members in pairs.items():
        if len(members) == 1:  # most likely a misspelt key: its row would compare nothing
            (where,) = members.values()
            raise QueryFileError(
                f"{where}: pair {key!r} has no other query; a pair names one query in several "
                "languages"
            )
    return queries


def _join_pair(members: dict[str, str], query: EvalQuery, where: str) -> None:
    """Adds `query` to its pair's members, refusing a second query in the same language."""
    first = members.get(query.language)
    if first is not None:
        hint = " (this one's language was guessed from its script: give lang)"
        raise QueryFileError(
            f"{where}: pair {query.pair!r} already has its {query.language} query, at {first}; "
            f"give each language once{hint if query.lang_inferred else ''}"
        )
    members[query.language] = where


def _parse_query(record: dict, where: str, root: Path, *, default_id: str) -> EvalQuery:
    kinds = [k for k in _KINDS if k in record]
    if len(kinds) != 1:
        raise QueryFileError(f"{where}: give exactly one of image, frame or text")
    kind = kinds[0]
    expected = record.get("expected")
    if isinstance(expected, str):
        expected = [expected]
    if not expected or not all(isinstance(e, str) and e for e in expected):
        raise QueryFileError(f"{where}: expected must be a video name or a list of them")
    expected_time = record.get("expected_time_s")
    if expected_time is not None and not (_is_number(expected_time) and expected_time >= 0):
        raise QueryFileError(f"{where}: expected_time_s must be a number ≥ 0")
    pair = record.get("pair", "")
    if not isinstance(pair, str) or ("pair" in record and not pair.strip()):
        raise QueryFileError(f"{where}: pair must be a non-empty string naming the concept")
    common = {
        "query_id": str(record.get("id") or default_id),
        "category": str(record.get("category") or ""),
        "kind": kind,
        "expected": tuple(expected),
        "expected_time_s": None if expected_time is None else float(expected_time),
        "pair": pair.strip(),
    }
    if kind == "text":
        text = record["text"]
        if not isinstance(text, str) or not text.strip():
            raise QueryFileError(f"{where}: text must be a non-empty string")
        lang = record.get("lang")
        if lang is None:
            return EvalQuery(text=text, lang=likely_language(text), lang_inferred=True, **common)
        if not isinstance(lang, str) or lang not in LANGUAGE_SCRIPTS:
            raise QueryFileError(
                f"{where}: lang {lang!r} is not a known ISO 639-1 code "
                f"({', '.join(sorted(LANGUAGE_SCRIPTS))})"
            )
        return EvalQuery(text=text, lang=lang, **common)
    if "lang" in record:
        raise QueryFileError(f"{where}: lang is for text queries; {kind} queries have none")
    if kind == "image":
        return EvalQuery(image=_read_media(record["image"], root, where, "image"), **common)
    frame = record["frame"]
    if not isinstance(frame, dict) or not _is_number(frame.get("at_s")):
        raise QueryFileError(f'{where}: frame must be {{"video": PATH, "at_s": SECONDS}}')
    video = _media_path(frame.get("video"), root, where, "frame.video")
    return EvalQuery(image=_frame_still(video, float(frame["at_s"]), where), **common)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _media_path(value: object, root: Path, where: str, name: str) -> Path:
    if not isinstance(value, str) or not value:
        raise QueryFileError(f"{where}: {name} must be a file path")
    path = Path(value) if Path(value).is_absolute() else root / value
    if not path.is_file():
        raise QueryFileError(f"{where}: {name}: no file {path}")
    return path


def _read_media(value: object, root: Path, where: str, name: str) -> bytes:
    return _media_path(value, root, where, name).read_bytes()


def _frame_still(video: Path, at_s: float, where: str) -> bytes:
    try:
        return still_from(video, at_s)
    except ServiceError as exc:  # the decoder's named media errors (CORRUPT_MEDIA, …)
        raise QueryFileError(f"{where}: frame of {video.name} at {at_s}s: {exc}") from exc


def _names(hit: VideoHit) -> set[str]:
    """Every name a query file may use for the hit's video."""
    video = hit.video
    names = {video.video_id, video.title}
    if video.uri:
        file_name = PurePosixPath(video.uri.removeprefix("file://")).name
        names |= {file_name, PurePosixPath(file_name).stem}
    return names - {""}


def judge(query: EvalQuery, result: SearchResult, latency_ms: float) -> QueryOutcome:
    """Scores one answer against the query's labels."""
    ranks: list[int | None] = []
    for name in query.expected:
        ranks.append(next((r for r, hit in enumerate(result.hits, 1) if name in _names(hit)), None))
    present = [r for r in ranks if r is not None]
    rank = min(present) if present else None
    moment_hit = None
    if rank is not None and query.expected_time_s is not None:
        t = query.expected_time_s
        moment_hit = any(m.start_s <= t <= m.end_s for m in result.hits[rank - 1].moments)
    return QueryOutcome(
        query, rank, tuple(ranks), moment_hit, latency_ms, warnings=tuple(result.warnings)
    )


def run_queries(
    client: Client,
    queries: Iterable[EvalQuery],
    *,
    top_k: int = 10,
    collection: str = "",
    skip_cache: bool = True,
) -> list[QueryOutcome]:
    """Runs every query once, in order; a failed call is an outcome, not an abort."""
    outcomes = []
    for query in queries:
        started = time.perf_counter()
        try:
            result = client.search(
                image=query.image or None,
                text=query.text or None,
                top_k=top_k,
                collection=collection,
                skip_cache=skip_cache,
            )
        except ClipmeshError as error:
            latency = (time.perf_counter() - started) * 1000
            outcomes.append(
                QueryOutcome(query, None, (None,) * len(query.expected), None, latency, str(error))
            )
            continue
        outcomes.append(judge(query, result, (time.perf_counter() - started) * 1000))
    return outcomes


def summarise(outcomes: list[QueryOutcome]) -> GroupReport:
    """Recall@k (share of expected videos in the top k, averaged over queries), MRR, the
    moment hit share over the queries where it can be judged, and latency."""
    report = GroupReport(queries=len(outcomes))
    if not outcomes:
        return report
    report.errors = sum(1 for o in outcomes if o.error)
    for k in RECALL_AT:
        shares = [sum(r is not None and r <= k for r in o.found) / len(o.found) for o in outcomes]
        report.recall[k] = float(np.mean(shares))
    report.mrr = float(np.mean([1 / o.rank if o.rank else 0.0 for o in outcomes]))
    judged = [o.moment_hit for o in outcomes if o.moment_hit is not None]
    report.moment_judged = len(judged)
    report.moment_hit_share = float(np.mean(judged)) if judged else None
    latencies = np.array([o.latency_ms for o in outcomes])
    report.latency_p50_ms = float(np.percentile(latencies, 50))
    report.latency_p95_ms = float(np.percentile(latencies, 95))
    report.latency_max_ms = float(latencies.max())
    return report


def report_by_category(outcomes: list[QueryOutcome]) -> dict[str, GroupReport]:
    """`"overall"` first, then one report per category in name order."""
    categories = sorted({o.query.category or "uncategorised" for o in outcomes})
    reports = {"overall": summarise(outcomes)}
    for category in categories:
        reports[category] = summarise(
            [o for o in outcomes if (o.query.category or "uncategorised") == category]
        )
    return reports


def _language_order(language: str) -> tuple[bool, str]:
    return (language == IMAGE_LANGUAGE, language)


def report_by_language(outcomes: list[QueryOutcome]) -> dict[str, GroupReport]:
    """One report per language in code order, then image and frame queries as "image"."""
    languages = sorted({o.query.language for o in outcomes}, key=_language_order)
    return {
        language: summarise([o for o in outcomes if o.query.language == language])
        for language in languages
    }


def outcomes_by_pair(outcomes: list[QueryOutcome]) -> dict[str, dict[str, QueryOutcome]]:
    """Pair key → language → the outcome of the pair's query in it; pairs in file order."""
    pairs: dict[str, dict[str, QueryOutcome]] = {}
    for outcome in outcomes:
        if outcome.query.pair:
            pairs.setdefault(outcome.query.pair, {})[outcome.query.language] = outcome
    return pairs


def _compares_languages(outcomes: list[QueryOutcome]) -> bool:
    """Whether the per-language tables say anything: texts in several languages, or pairs."""
    text_languages = {o.query.lang for o in outcomes if o.query.kind == "text"}
    return len(text_languages) > 1 or any(o.query.pair for o in outcomes)


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def _figures_table(
    title: str, label: str, reports: dict[str, GroupReport], caption: str | None
) -> Table:
    table = Table(title=title, caption=caption)
    table.add_column(label, no_wrap=True)
    for column in ("n", "R@1", "R@5", "R@10", "MRR", "moment", "p50 ms", "p95 ms", "err"):
        table.add_column(column, justify="right", no_wrap=True)
    for name, report in reports.items():
        table.add_row(
            f"[bold]{name}[/]" if name == "overall" else name,
            str(report.queries),
            *(_percent(report.recall[k]) for k in RECALL_AT),
            f"{report.mrr:.2f}",
            _percent(report.moment_hit_share),
            f"{report.latency_p50_ms:.0f}",
            f"{report.latency_p95_ms:.0f}",
            str(report.errors),
        )
    return table


def _pair_table(pairs: dict[str, dict[str, QueryOutcome]]) -> Table:
    languages = sorted({lang for row in pairs.values() for lang in row}, key=_language_order)
    table = Table(title="rank by language", caption="miss: not found")
    table.add_column("pair", no_wrap=True)
    for language in languages:
        table.add_column(language, justify="right", no_wrap=True)
    for key, members in pairs.items():
        table.add_row(key, *(_rank_cell(members.get(language)) for language in languages))
    return table


def _rank_cell(outcome: QueryOutcome | None) -> str:
    if outcome is None:  # the pair has no query in this language
        return ""
    if outcome.error:
        return "[red]error[/]"
    return "[red]miss[/]" if outcome.rank is None else str(outcome.rank)


_FIGURES_NOTE = "moment: share of found videos whose moment holds the expected time; ms: latency"
_GUESSED_NOTE = "*: language guessed from the script (Latin: en); give lang"


def render(reports: dict[str, GroupReport], outcomes: list[QueryOutcome], console: Console) -> None:
    """The figures per category; when the file compares languages, the figures per language
    and each pair's ranks side by side; then every query that missed or failed."""
    title = f"retrieval over {len(outcomes)} queries"
    console.print(_figures_table(title, "category", reports, _FIGURES_NOTE))
    if _compares_languages(outcomes):
        guessed = {o.query.language for o in outcomes if o.query.lang_inferred}
        by_language = {
            f"{language}*" if language in guessed else language: report
            for language, report in report_by_language(outcomes).items()
        }
        note = _GUESSED_NOTE if guessed else None
        console.print(_figures_table("retrieval by language", "language", by_language, note))
        pairs = outcomes_by_pair(outcomes)
        if pairs:
            console.print(_pair_table(pairs))
    for warning in sorted({w for o in outcomes for w in o.warnings}):
        console.print(f"[yellow]warning:[/] {warning}")
    for outcome in outcomes:
        if outcome.error:
            console.print(f"[red]error[/] {outcome.query.query_id}: {outcome.error}")
        elif outcome.rank is None or outcome.rank > 10:
            console.print(f"missed {outcome.query.query_id}: {', '.join(outcome.query.expected)}")


def as_json(
    reports: dict[str, GroupReport], outcomes: list[QueryOutcome], *, top_k: int
) -> dict[str, object]:
    """The report for scripts: figures per category and per language, the pairs' ranks by
    language, and every query's outcome."""
    languages = report_by_language(outcomes)
    return {
        "top_k": top_k,
        "groups": {name: report.as_json() for name, report in reports.items()},
        "languages": {
            language: {
                **report.as_json(),
                "inferred": sum(
                    1 for o in outcomes if o.query.language == language and o.query.lang_inferred
                ),
            }
            for language, report in languages.items()
        },
        "pairs": {
            key: {language: members[language].rank for language in languages if language in members}
            for key, members in outcomes_by_pair(outcomes).items()
        },
        "queries": [
            {
                "id": o.query.query_id,
                "category": o.query.category,
                "kind": o.query.kind,
                "lang": o.query.language,
                "lang_inferred": o.query.lang_inferred,
                "pair": o.query.pair or None,
                "expected": list(o.query.expected),
                "rank": o.rank,
                "moment_hit": o.moment_hit,
                "latency_ms": round(o.latency_ms, 2),
                "error": o.error,
            }
            for o in outcomes
        ],
        "warnings": sorted({w for o in outcomes for w in o.warnings}),
    }


@click.command("eval")
@click.argument("queries_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--media-root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder relative image and video paths are read from (default: the file's folder).",
)
@click.option("--top-k", type=click.IntRange(10, 100), default=10, show_default=True)
@click.option("--collection", default="", help="Collection to search (default: the service's).")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the JSON report here.",
)
@target_option("CLIPMESH_TARGET", "127.0.0.1:50050", "Orchestrator")
@click.option("--json", "as_json_flag", is_flag=True, help="Print JSON for scripts.")
def eval_command(
    *,
    queries_file: Path,
    media_root: Path | None,
    top_k: int,
    collection: str,
    output: Path | None,
    target: str,
    as_json_flag: bool,
) -> None:
    """Recall@1/5/10, moment accuracy and latency of a labelled query set, per category and
    per language."""
    from clipmesh.cli.library import client_for

    try:
        queries = load_queries(queries_file, media_root=media_root)
    except QueryFileError as exc:
        raise click.UsageError(str(exc)) from exc
    with client_for(target) as client:
        outcomes = run_queries(client, queries, top_k=top_k, collection=collection)
    reports = report_by_category(outcomes)
    document = as_json(reports, outcomes, top_k=top_k)
    if output is not None:
        output.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    if as_json_flag:
        click.echo(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        render(reports, outcomes, Console())
    sys.exit(1 if any(o.error for o in outcomes) else 0)
