"""The figures of `clipmesh eval`: recall@1/5/10, MRR, moment accuracy and latency per
category and per language, each pair's rank in every language, as tables and as JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from clipmesh.cli.evaluation import QueryOutcome

RECALL_AT = (1, 5, 10)
# The language group of image and frame queries in the per-language report.
IMAGE_LANGUAGE = "image"


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
