"""The quality check of one clip, with the encoder's help, as a `QualityScores` message.

Sharpness, flicker and smoothness come from the pixels (`quality.score_clip`, in a worker
thread). Text–video match is the mean cosine between a text's embedding and the embeddings of
frames spread over the clip, both from the encoder service, so it is measured in the same space
the library is searched in.

The text is the clip's prompt in a language the encoder's text tower was trained on
(`match_text`): the prompt as generated when the tower reads it (a multilingual tower reads
both), else the same prompt rendered in the other language (a Chinese project on an
English-only tower is matched in English). A rendering keeps the shot's own words as the
script wrote them, so an English rendering of a Chinese shot still holds Chinese characters,
which an English tower reads as byte fragments: the cosine is then reported but not enforced
for that clip, and the project's notices name the shot. Likewise, when the encoder runs with
random weights (tests, the offline demo) the cosine means nothing: it is still computed and
returned, but not enforced, and the project says so in its notices.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from clipmesh.encoder.client import EncoderClient
from clipmesh.previs.prompts import Language, PromptState, ShotPrompt, render
from clipmesh.previs.quality import (
    QualityThresholds,
    sample_frames,
    score_clip,
    text_video_match,
)
from clipmesh.previs.records import QualityScores
from clipmesh.previs.templates import TemplateLibrary
from clipmesh.runtime.languages import (
    LANGUAGE_SCRIPTS,
    scripts_read_by,
    unsupported_scripts,
)

MATCH_FRAMES = 4
MATCH_FRAME_SIDE = 384  # the encoder centre-crops to its input size (224 px for ViT-B-32)
CALL_TIMEOUT_S = 60.0
PROMPT_LANGUAGES: tuple[Language, ...] = ("zh", "en")
RANDOM_WEIGHTS_NOTICE = (
    "text_match is reported but not enforced: the encoder's weights are random ({ref}), so "
    "text–video cosines carry no meaning"
)
# Recomputed from the selected clips at every stitch; the prefix finds the last one.
UNREAD_TEXT_NOTICE = "text_match is reported but not enforced for shot(s) "


@dataclass(frozen=True)
class TextTower:
    """The encoder's text tower as the text–video match needs it, read once per run so that
    every clip of a run is matched alike.

    Attributes:
        languages: What it was trained on (ISO 639-1 codes, or "multilingual").
        random_weights: True when its weights are a seeded random initialisation.
        weights_ref: The checkpoint, pretrained tag or seed.
    """

    languages: tuple[str, ...]
    random_weights: bool = False
    weights_ref: str = ""

    @property
    def weights_notice(self) -> str:
        """A notice when the weights are random (text match not enforced), else ""."""
        return RANDOM_WEIGHTS_NOTICE.format(ref=self.weights_ref) if self.random_weights else ""


@dataclass(frozen=True)
class MatchText:
    """What the clips of one prompt are matched against.

    Attributes:
        text: The prompt, rendered in `language`.
        language: The prompt's own language when the text tower reads it, else the other one
            when the tower reads that.
        unread_scripts: Scripts of `text` the tower was not trained on (the shot's own words
            stay as the script wrote them in any rendering); when there are any, the match is
            not enforced.
    """

    text: str
    language: Language
    unread_scripts: tuple[str, ...] = ()


def match_text(prompt: ShotPrompt, library: TemplateLibrary, languages: Sequence[str]) -> MatchText:
    """The text clips made from `prompt` are matched against, for a text tower trained on
    `languages`."""
    language = _readable_language(prompt.language, languages)
    text = prompt.prompt
    if language != prompt.language:
        state = dataclasses.replace(prompt.state, language=language)
        text = render(state, library, prompt.lineage.revisions).prompt
    # Each of the shot's own words on its own: a Chinese action is a few percent of the
    # letters of an English rendering, yet it is what the clip should show.
    parts = (text, *_untranslated(prompt.state, language))
    unread = (script for part in parts for script in unsupported_scripts(part, languages))
    return MatchText(text, language, tuple(dict.fromkeys(unread)))


def _readable_language(language: Language, languages: Sequence[str]) -> Language:
    """`language` when a text tower trained on `languages` reads its script, else the other
    prompt language when it reads that one's, else `language` (neither is read)."""
    scripts = scripts_read_by(languages)  # every script for a multilingual tower
    others = [other for other in PROMPT_LANGUAGES if other != language]
    return next(
        (lang for lang in (language, *others) if LANGUAGE_SCRIPTS[lang] <= scripts), language
    )


def _untranslated(state: PromptState, language: Language) -> tuple[str, ...]:
    """The parts of a rendering in `language` that no template translates: the shot's action,
    names and place, free-text notes, and directions (a reference footage's title)."""
    directions = (en if language == "en" else zh for en, zh in state.directions)
    return (state.subject, *state.characters, state.location, *state.notes, *directions)


def unread_text_notice(scores_by_shot: Mapping[str, QualityScores]) -> str:
    """A notice naming the shots whose clips were matched against text in a script the text
    tower was not trained on, else ""."""
    unread = {
        shot_id: scores.text_match_unread_scripts
        for shot_id, scores in scores_by_shot.items()
        if scores.text_match_unread_scripts
    }
    if not unread:
        return ""
    scripts = sorted({script for found in unread.values() for script in found})
    return (
        f"{UNREAD_TEXT_NOTICE}{', '.join(unread)}: the text their clips are matched against "
        f"holds {' and '.join(scripts)} script (the shot's own words — action, place, names, "
        "notes — stay as the script wrote them in any rendering), which the encoder's text "
        "tower was not trained on, so the cosine is unreliable; an encoder with a "
        "multilingual text tower reads it"
    )


class ClipChecker:
    """Scores clips against thresholds.

    Args:
        encoder: Embeds prompts and frames.
        thresholds: The limits a clip must meet.
    """

    def __init__(self, encoder: EncoderClient, thresholds: QualityThresholds) -> None:
        self._encoder = encoder
        self.thresholds = thresholds

    async def text_tower(self) -> TextTower:
        """What the encoder's text tower reads, and whether its weights are random."""
        info = await self._encoder.model_info(timeout_s=CALL_TIMEOUT_S)
        return TextTower(info.text_languages, info.random_weights, info.weights_ref)

    async def embed_text(self, text: str) -> np.ndarray:
        """The encoder's embedding of `text` (a prompt)."""
        embeddings = await self._encoder.embed_texts(
            [text], interactive=False, timeout_s=CALL_TIMEOUT_S
        )
        return embeddings.vectors[0]

    async def embed_images(self, images: list[bytes]) -> np.ndarray:
        """The encoder's embeddings of encoded images, one row each."""
        embeddings = await self._encoder.embed_images(
            images, interactive=False, timeout_s=CALL_TIMEOUT_S
        )
        return embeddings.vectors

    async def check(
        self, clip: Path, match: MatchText, text_vector: np.ndarray, *, enforce_text_match: bool
    ) -> QualityScores:
        """Scores `clip` against `match` (embedded as `text_vector`); `passed` says whether
        every enforced score met its threshold. The text match is not enforced when
        `enforce_text_match` is False (random weights) or `match` holds unread scripts.

        Raises:
            InvalidArgument: The clip does not decode.
            ServiceError: The encoder failed.
        """
        pixels, frames = await asyncio.gather(
            asyncio.to_thread(score_clip, clip),
            asyncio.to_thread(_match_frames, clip),
        )
        cosine = text_video_match(text_vector, await self.embed_images(frames))
        enforced = enforce_text_match and not match.unread_scripts
        limits = self.thresholds
        if not enforced:
            limits = dataclasses.replace(limits, min_text_match=float("-inf"))
        scored = dataclasses.replace(pixels, text_match=cosine)
        passed, failures = limits.passes(scored)
        return QualityScores(
            sharpness=scored.sharpness,
            flicker=scored.flicker,
            smoothness=scored.smoothness,
            text_match=cosine,
            passed=passed,
            failures=list(failures),
            text_match_enforced=enforced,
            text_match_language=match.language,
            text_match_text=match.text,
            text_match_unread_scripts=list(match.unread_scripts),
        )


def _match_frames(clip: Path) -> list[bytes]:
    """JPEGs of frames spread over the clip, for the text–video match."""
    encoded = []
    for frame in sample_frames(clip, max_frames=MATCH_FRAMES, max_side=MATCH_FRAME_SIDE):
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="JPEG", quality=90)
        encoded.append(buffer.getvalue())
    return encoded
