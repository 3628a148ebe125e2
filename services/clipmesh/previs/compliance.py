"""Compliance pre-filter: screens a shot's prompts and reference images before generation.

Text is checked against term lists (`compliance_lists/sensitive_terms.txt`, `real_people.txt`, plus
any given in configuration), after NFKC normalisation so full-width and compatibility forms
match (`Ｊａｎｅ` is `Jane`). Latin-script terms match whole words, case-insensitively
("ann" does not match "annual"); terms with CJK characters match as substrings, since those
scripts do not separate words with spaces. Reference images are checked with OpenCV's bundled
Haar frontal-face cascade: a face may be a real person's likeness, so it is flagged for review.

A blocked shot is reported with its reasons and never rewritten: nothing here alters the text.
Findings in the negative prompt are reported but do not block, since a negative prompt steers
the model away from what it names.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import UnidentifiedImageError

from clipmesh.media.images import open_checked
from clipmesh.runtime.errors import InvalidArgument

DATA_DIR = Path(__file__).with_name("compliance_lists")
"""Where the shipped example lists live."""

SENSITIVE_TERMS = "sensitive_terms"
REAL_PEOPLE = "real_people"
FACE = "face"

MAX_IMAGE_PIXELS = 40_000_000
"""Reference images larger than this are refused before decoding."""

_IMAGE_FORMATS = ("JPEG", "PNG", "WEBP")

_CJK = re.compile(r"[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff]")
# A word character of a spaced script: `\w` minus CJK, so "Ann说" still counts "Ann" as a word.
_WORD = r"[^\W\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff]"
# Faces smaller than this are texture, not a likeness worth flagging.
_MIN_FACE_PX = 24
# Face detection runs on the image scaled to fit this square: a likeness worth flagging fills
# a good part of a reference image, and the detector's time and memory grow with the pixels
# (a 42x458753 WebP took 1 GB at full size).
_DETECTION_SIDE = 1024


@dataclass(frozen=True)
class Finding:
    """One match of a policy list or check.

    Attributes:
        kind: The list (`sensitive_terms`, `real_people`) or `face`.
        term: The listed term that matched, or a description of the face.
        field: Where: `prompt`, `negative_prompt` or `reference_images[i]`.
        start: Character offset in the NFKC-normalised text (the box's x for a face).
        end: End offset, exclusive (the box's x + width for a face).
    """

    kind: str
    term: str
    field: str
    start: int
    end: int


@dataclass(frozen=True)
class Verdict:
    """What screening decided about one shot.

    Attributes:
        blocked: True when the shot must not be generated as it stands.
        reasons: One line per blocking finding, naming the term and where it was found.
        findings: Every finding, blocking or not.
    """

    blocked: bool
    reasons: list[str]
    findings: list[Finding] = field(default_factory=list)


def read_terms(path: Path) -> list[str]:
    """The terms in a list file: one a line, blank lines and `#` comment lines skipped."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _pattern(term: str) -> re.Pattern[str]:
    term = unicodedata.normalize("NFKC", term).strip()
    words = r"\s+".join(re.escape(word) for word in term.split())
    if _CJK.search(term):
        return re.compile(words, re.IGNORECASE)
    return re.compile(rf"(?<!{_WORD}){words}(?!{_WORD})", re.IGNORECASE)


class CompliancePolicy:
    """Term lists and the face check, applied to one shot at a time.

    Args:
        terms: Terms by list name (`sensitive_terms`, `real_people`).
        max_image_pixels: Reference images larger than this are refused before decoding.
    """

    def __init__(
        self, terms: dict[str, Iterable[str]], *, max_image_pixels: int = MAX_IMAGE_PIXELS
    ) -> None:
        self._patterns = [
            (kind, term, _pattern(term)) for kind, listed in terms.items() for term in listed
        ]
        self._max_image_pixels = max_image_pixels
        self._faces = cv2.CascadeClassifier(
            cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
        )

    @classmethod
    def load(
        cls,
        *,
        data_dir: Path = DATA_DIR,
        extra_paths: dict[str, Sequence[Path]] | None = None,
        extra_terms: dict[str, Sequence[str]] | None = None,
        max_image_pixels: int = MAX_IMAGE_PIXELS,
    ) -> CompliancePolicy:
        """The shipped lists plus any from configuration.

        Args:
            data_dir: Holds `sensitive_terms.txt` and `real_people.txt`.
            extra_paths: More list files by list name, e.g. `{"real_people": [path]}`.
            extra_terms: More terms by list name.
            max_image_pixels: Reference images larger than this are refused.
        """
        terms = {
            kind: read_terms(data_dir / f"{kind}.txt") for kind in (SENSITIVE_TERMS, REAL_PEOPLE)
        }
        for kind, paths in (extra_paths or {}).items():
            for path in paths:
                terms.setdefault(kind, []).extend(read_terms(path))
        for kind, listed in (extra_terms or {}).items():
            terms.setdefault(kind, []).extend(listed)
        return cls(terms, max_image_pixels=max_image_pixels)

    def check_text(self, text: str, *, field: str = "prompt") -> list[Finding]:
        """Every listed term in `text`, in order of position (offsets in NFKC form)."""
        normalised = unicodedata.normalize("NFKC", text)
        findings = [
            Finding(kind, term, field, match.start(), match.end())
            for kind, term, pattern in self._patterns
            for match in pattern.finditer(normalised)
        ]
        return sorted(findings, key=lambda f: (f.start, f.end))

    def _grey(self, image_bytes: bytes, field: str) -> tuple[np.ndarray, float]:
        """The image in grey, scaled to fit `_DETECTION_SIDE`, and the scale it was shrunk by."""
        try:
            # The formats the encoder embeds, and no others: Pillow's other plugins (EPS runs
            # Ghostscript) have no business parsing a caller's bytes.
            image = open_checked(
                image_bytes, _IMAGE_FORMATS, max_pixels=self._max_image_pixels, field=field
            )
            width = image.width
            image.draft("L", (_DETECTION_SIDE, _DETECTION_SIDE))  # JPEG: decode scaled down
            grey = image.convert("L")
            grey.thumbnail((_DETECTION_SIDE, _DETECTION_SIDE))
            return np.asarray(grey), width / grey.width
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
            raise InvalidArgument(
                f"{field}: not a readable JPEG, PNG or WebP image ({exc})",
                field=field,
                reason="CORRUPT_IMAGE",
            ) from exc

    def check_reference_image(
        self, image_bytes: bytes, *, field: str = "reference_image"
    ) -> list[Finding]:
        """Faces in a reference image, each a possible real person's likeness.

        Raises:
            InvalidArgument: `CORRUPT_IMAGE` when the bytes do not decode;
                `IMAGE_TOO_MANY_PIXELS` when the image is over the pixel cap;
                `IMAGE_ASPECT_RATIO_TOO_LARGE` for a strip (the encoder's rule).
        """
        grey, scale = self._grey(image_bytes, field)
        boxes = self._faces.detectMultiScale(
            cv2.equalizeHist(grey),
            scaleFactor=1.1,
            minNeighbors=5,
            minSize=(_MIN_FACE_PX, _MIN_FACE_PX),
        )
        # Reported in the caller's pixels, not the scaled copy's.
        boxes = [tuple(round(v * scale) for v in box) for box in boxes]
        return [
            Finding(FACE, f"face {w}x{h} px at ({x}, {y})", field, int(x), int(x + w))
            for x, y, w, h in boxes
        ]

    def screen(
        self, prompt: str, negative_prompt: str = "", reference_images: Sequence[bytes] = ()
    ) -> Verdict:
        """Screens one shot; blocks on any finding outside the negative prompt.

        Raises:
            InvalidArgument: A reference image is corrupt or too large.
        """
        findings = self.check_text(prompt) + self.check_text(
            negative_prompt, field="negative_prompt"
        )
        for index, image in enumerate(reference_images):
            findings += self.check_reference_image(image, field=f"reference_images[{index}]")
        reasons = [_reason(f) for f in findings if f.field != "negative_prompt"]
        return Verdict(bool(reasons), reasons, findings)


def _reason(finding: Finding) -> str:
    if finding.kind == FACE:
        return f"{finding.field}: possible real-person likeness ({finding.term})"
    what = "real person" if finding.kind == REAL_PEOPLE else "sensitive term"
    return f"{finding.field}: names {what} {finding.term!r} at {finding.start}"
