"""The template library: prompt phrases and revision rules, kept as JSON data files.

Each ``*.json`` file in this folder is an object of groups; each group is a list of entries
``{"id", "en", "zh", "keywords": {"en": [...], "zh": [...]}, ...}``. Keys starting with
``_`` are comments. Ids are unique within a file and group names across files. Extra fields
are kept in :attr:`Template.extra` (lighting ``times``/``colour``/``practical``, rule
``changes``). :meth:`TemplateLibrary.load` validates everything and raises
:class:`TemplateError` naming the file and entry at fault.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = ["Template", "TemplateError", "TemplateLibrary", "best_match", "contains"]

Language = Literal["zh", "en"]

_CJK = re.compile(r"[\u3400-\u9fff]")
TEMPLATES_DIR = Path(__file__).parent
REQUIRED_GROUPS = ("sizes", "angles", "movements", "lighting", "colour", "style", "moods")
# Revision rules may set these slots; each names the template group its ids come from.
SLOT_GROUPS = {
    "size": "sizes",
    "angle": "angles",
    "movement": "movements",
    "lighting": "lighting",
    "colour": "colour",
    "style": "style",
    "mood": "moods",
}
RULE_OPS = {"pace", "remove_words", "shot_size_step", "set", "direction"}


class TemplateError(ValueError):
    """A template file is missing, unreadable or has a malformed entry."""


@dataclass(frozen=True)
class Template:
    """One phrase in the library.

    Attributes:
        id: Unique within its file.
        en: English phrasing.
        zh: Chinese phrasing.
        keywords: Words (en and zh) that recognise this entry in free text.
        extra: Any other fields of the entry (lighting "times", rule "changes"...).
    """

    id: str
    en: str
    zh: str
    keywords: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def text(self, language: Language) -> str:
        """Returns the phrasing in ``language``."""
        return self.zh if language == "zh" else self.en


def contains(text: str, keyword: str) -> bool:
    """Whether ``keyword`` occurs in ``text``: as a substring for Chinese, a whole word else."""
    if _CJK.search(keyword):
        return keyword in text
    return re.search(rf"(?<![\w-]){re.escape(keyword.lower())}(?![\w-])", text.lower()) is not None


def best_match(templates: Iterable[Template], text: str, field_name: str = "keywords"):
    """Returns the template with most keyword hits in ``text`` (longest hit breaks ties)."""
    best, best_key = None, (0, 0)
    for template in templates:
        words = (
            template.keywords if field_name == "keywords" else template.extra.get(field_name, ())
        )
        hits = [w for w in words if contains(text, w)]
        key = (len(hits), max((len(w) for w in hits), default=0))
        if hits and key > best_key:
            best, best_key = template, key
    return best


class TemplateLibrary:
    """The phrase templates and revision rules, by group ("sizes", "moods", "rules"...)."""

    def __init__(self, groups: Mapping[str, tuple[Template, ...]]) -> None:
        self._groups = dict(groups)

    @classmethod
    def load(cls, directory: Path | str | None = None) -> TemplateLibrary:
        """Loads and validates every ``*.json`` file in ``directory``.

        Args:
            directory: Folder of template files; defaults to the package's templates.

        Raises:
            TemplateError: Naming the file and entry at fault.
        """
        folder = Path(directory) if directory is not None else TEMPLATES_DIR
        groups: dict[str, tuple[Template, ...]] = {}
        for path in sorted(folder.glob("*.json")):
            for name, entries in _load_file(path).items():
                if name in groups:
                    raise TemplateError(f"{path.name}: group {name!r} is defined twice")
                groups[name] = entries
        missing = [g for g in (*REQUIRED_GROUPS, "negative", "rules") if g not in groups]
        if missing:
            raise TemplateError(f"{folder}: no template group(s) {', '.join(missing)}")
        library = cls(groups)
        library._check_references()
        return library

    def group(self, name: str) -> tuple[Template, ...]:
        """Returns the templates of group ``name`` in file order."""
        return self._groups[name]

    def get(self, group: str, template_id: str) -> Template:
        """Returns one template by id; raises KeyError naming the group if absent."""
        for template in self._groups[group]:
            if template.id == template_id:
                return template
        raise KeyError(f"no template {template_id!r} in group {group!r}")

    def match(self, group: str, text: str) -> Template | None:
        """Returns the template of ``group`` whose keywords best match ``text``, or None."""
        return best_match(self._groups[group], text)

    def _check_references(self) -> None:
        for template in self.group("lighting"):
            colour = template.extra.get("colour", "natural")
            self._require("lighting.json", template.id, "colour", colour)
        for rule in self.group("rules"):
            for change in rule.extra["changes"]:
                if change["op"] == "set":
                    group = SLOT_GROUPS.get(change.get("slot"))
                    if group is None:
                        raise TemplateError(f"rules: entry {rule.id!r}: bad slot {change!r}")
                    self._require("rules", rule.id, group, change.get("id"))

    def _require(self, where: str, entry: str, group: str, template_id: object) -> None:
        if not any(t.id == template_id for t in self._groups[group]):
            raise TemplateError(f"{where}: entry {entry!r} names unknown {group} {template_id!r}")


def _load_file(path: Path) -> dict[str, tuple[Template, ...]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise TemplateError(f"{path.name}: cannot read template file: {error}") from error
    if not isinstance(data, dict):
        raise TemplateError(f"{path.name}: expected an object of groups")
    groups: dict[str, tuple[Template, ...]] = {}
    seen: set[str] = set()
    for name, entries in data.items():
        if name.startswith("_"):  # "_comment" keys document the file
            continue
        if not isinstance(entries, list):
            raise TemplateError(f"{path.name}: group {name!r} must be a list of entries")
        parsed = []
        for index, entry in enumerate(entries):
            where = f"{path.name}: {name}[{index}]"
            template = _parse_entry(entry, where, is_rule=name == "rules")
            if template.id in seen:
                raise TemplateError(f"{where}: duplicate id {template.id!r}")
            seen.add(template.id)
            parsed.append(template)
        groups[name] = tuple(parsed)
    return groups


def _parse_entry(entry: object, where: str, *, is_rule: bool) -> Template:
    if not isinstance(entry, dict):
        raise TemplateError(f"{where}: entry must be an object")
    for key in ("id", "en", "zh"):
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            label = entry.get("id", "?")
            raise TemplateError(f"{where} (id={label!r}): missing or empty {key!r}")
    keywords = entry.get("keywords", {})
    if not isinstance(keywords, dict) or not all(
        isinstance(words, list) and all(isinstance(w, str) and w for w in words)
        for words in keywords.values()
    ):
        raise TemplateError(f"{where} (id={entry['id']!r}): 'keywords' must map to string lists")
    if is_rule:
        changes = entry.get("changes")
        if not changes or not all(isinstance(c, dict) and c.get("op") in RULE_OPS for c in changes):
            raise TemplateError(f"{where} (id={entry['id']!r}): 'changes' needs known ops")
    extra = {k: v for k, v in entry.items() if k not in ("id", "en", "zh", "keywords")}
    words = tuple(w for lang in ("en", "zh") for w in keywords.get(lang, ()))
    return Template(entry["id"], entry["en"], entry["zh"], words, extra)
