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
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import click
from rich.console import Console

from clipmesh.cli.connection import target_option
from clipmesh.cli.evaluation_report import (
    IMAGE_LANGUAGE,
    as_json,
    render,
    report_by_category,
)
from clipmesh.demo.library import still_from
from clipmesh.runtime.errors import ServiceError
from clipmesh.runtime.languages import LANGUAGE_SCRIPTS, likely_language
from clipmesh_client import Client, ClipmeshError, SearchResult, VideoHit

_KINDS = ("image", "frame", "text")


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
