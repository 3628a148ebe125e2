"""Director's notes in, revised prompts out, by the rules in ``templates/revisions.json``.

A rule matches a note when any of its keywords (en or zh, whatever the prompt's language)
occurs in it; several rules may match one note and all are applied, in file order. Each rule
edits the prompt's structured state, never its text, so revisions compose and re-render
within the same ``max_chars``. A note no rule understands is kept as a free-text direction
at the end of the prompt, and its lineage entry has no rule ids, so nothing is dropped
silently.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from clipmesh.previs.prompts import (
    PromptState,
    RevisionRecord,
    ShotPrompt,
    render,
)
from clipmesh.previs.templates import Template, TemplateLibrary, contains

__all__ = ["matching_rules", "revise"]


def matching_rules(note: str, library: TemplateLibrary) -> list[Template]:
    """Returns the revision rules whose keywords occur in ``note``, in file order."""
    return [r for r in library.group("rules") if any(contains(note, k) for k in r.keywords)]


def revise(prompt: ShotPrompt, note: str, library: TemplateLibrary) -> ShotPrompt:
    """Applies one director's note to a prompt.

    Args:
        prompt: A prompt from ``build_prompt`` or an earlier ``revise``.
        note: The note, in Chinese or English ("更慢一些", "closer", "darker"...).
        library: Loaded templates (holds the rules).

    Returns:
        The re-rendered prompt; its lineage gains one :class:`RevisionRecord`.
    """
    note = note.strip()
    state = prompt.state
    rules = matching_rules(note, library)
    changes: list[str] = []
    for rule in rules:
        for change in rule.extra["changes"]:
            state, description = _apply(state, change, library)
            if description:
                changes.append(description)
    if not rules and note:
        state = dataclasses.replace(state, notes=(*state.notes, note))
        changes.append(f"free-text direction: {note}")
    record = RevisionRecord(note, tuple(r.id for r in rules), tuple(changes))
    return render(state, library, (*prompt.lineage.revisions, record))


def _apply(
    state: PromptState, change: Mapping[str, Any], library: TemplateLibrary
) -> tuple[PromptState, str]:
    """Applies one change of a rule; returns the new state and what changed ("" if nothing)."""
    op = change["op"]
    if op == "pace":
        return dataclasses.replace(state, pace=(change["en"], change["zh"])), (
            f"pace: {change['en']}"
        )
    if op == "direction":
        direction = (change["en"], change["zh"])
        if direction in state.directions:  # the same note twice should not repeat itself
            return state, ""
        return dataclasses.replace(state, directions=(*state.directions, direction)), (
            f"direction: {change['en']}"
        )
    if op == "remove_words":
        return _remove_words(state, [*change.get("en", ()), *change.get("zh", ())])
    if op == "shot_size_step":
        sizes = [t.id for t in library.group("sizes")]
        old = state.slot("size")
        # Clamped at the ends: "closer" on an extreme close-up leaves it as it is.
        new = sizes[max(0, min(len(sizes) - 1, sizes.index(old) + int(change["step"])))]
        return state.with_slot("size", new), f"size: {old} → {new}" if new != old else ""
    if op == "set":
        slot, new = change["slot"], change["id"]
        old = state.slot(slot)
        return state.with_slot(slot, new), f"{slot}: {old} → {new}" if new != old else ""
    raise ValueError(f"unknown revision op {op!r}")  # load() validates ops; a bug if reached


def _remove_words(state: PromptState, words: list[str]) -> tuple[PromptState, str]:
    subject, removed = state.subject, []
    for word in words:
        if not contains(subject, word):
            continue
        if re.search(r"[\u3400-\u9fff]", word):
            subject = subject.replace(word, "")
        else:
            subject = re.sub(rf"(?<![\w-]){re.escape(word)}(?![\w-])\s*", "", subject, flags=re.I)
        removed.append(word)
    if not removed:
        return state, ""
    subject = re.sub(r"\s{2,}", " ", subject).strip()
    return dataclasses.replace(
        state, subject=subject
    ), f"removed from subject: {', '.join(removed)}"
