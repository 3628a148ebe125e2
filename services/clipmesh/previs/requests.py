"""Checks of PrevisService requests, before anything is stored or generated.

Every problem is an `InvalidArgument` naming the field, so a caller learns all it needs from
the answer and nothing is half-made: a project is only stored once its script parsed, its
style is known and its reference images decoded.
"""

from __future__ import annotations

import re
import time
import unicodedata
import uuid

from clipmesh.index.records import collection_name
from clipmesh.previs.compliance import CompliancePolicy
from clipmesh.previs.config import PrevisConfig
from clipmesh.previs.planning import language_of, shots_of
from clipmesh.previs.records import Project, ProjectRequest, ProjectSettings, ReviewRequest, Shot
from clipmesh.previs.script import ScriptError, parse_script
from clipmesh.previs.templates import TemplateLibrary
from clipmesh.runtime.errors import InvalidArgument

MAX_TITLE_CHARS = 200
MAX_NOTE_CHARS = 500
MAX_SIDE_PX = 4096
MAX_FPS = 120.0
_NAME_RE = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_MODEL_RE = re.compile(r"[a-z][a-z0-9._-]{0,62}")  # model names have dots: "wan2.6-t2v"


def new_project(
    request: ProjectRequest,
    config: PrevisConfig,
    library: TemplateLibrary,
    policy: CompliancePolicy,
) -> tuple[Project, dict[str, bytes]]:
    """The project a request describes, its shots pending, and reference images by shot id.

    Raises:
        InvalidArgument: Naming the first field at fault.
    """
    title = _text(request.title, "title", MAX_TITLE_CHARS) or "Untitled"
    try:
        script = parse_script(request.script, format=request.format)
    except ScriptError as error:
        raise InvalidArgument(str(error), field="script", reason="BAD_SCRIPT") from error
    scenes, shots = shots_of(script)
    if len(shots) > config.max_shots:
        raise InvalidArgument(
            f"script makes {len(shots)} shots; the limit is {config.max_shots}",
            field="script",
            reason="TOO_MANY_SHOTS",
        )
    settings = ProjectSettings(
        variants=_variants(request.variants, config.max_variants),
        backend=_name(request.backend, "backend"),
        style=_style(request.style, library),
        language=language_of(" ".join(shot.description for shot in shots)),
        width=_side(request.width, "width"),
        height=_side(request.height, "height"),
        fps=_fps(request.fps),
        collection=collection_name(request.collection or config.default_collection),
        model=_model(request.model),
        multi_shot=request.multi_shot,
    )
    if (settings.width == 0) != (settings.height == 0):
        raise InvalidArgument("set both width and height, or neither", field="width")
    references = _references(request.references, shots, config, policy)
    for shot in shots:
        shot.has_reference_image = shot.shot_id in references
    project = Project(
        project_id=f"p{uuid.uuid4().hex[:16]}",
        title=title,
        scenes=scenes,
        shots=shots,
        settings=settings,
        create_time_s=time.time(),
    )
    return project, references


def note_of(request: ReviewRequest) -> str:
    """The review's note, checked; "" when the review restores or selects instead.

    Raises:
        InvalidArgument: Not exactly one of note, restore_revision and select_clip is set.
    """
    note = _text(request.note, "note", MAX_NOTE_CHARS)
    asked = [bool(note), request.restore_revision != 0, request.select_clip is not None]
    if sum(asked) != 1:
        raise InvalidArgument(
            "set exactly one of note, restore_revision and select_clip", field="note"
        )
    if request.restore_revision < 0:
        raise InvalidArgument("restore_revision must be positive", field="restore_revision")
    return note


def _text(value: str, field: str, limit: int) -> str:
    value = unicodedata.normalize("NFC", value).strip()
    if len(value) > limit:
        raise InvalidArgument(
            f"{field} has {len(value)} characters; the limit is {limit}", field=field
        )
    if any(unicodedata.category(c) == "Cc" and c not in "\n\t" for c in value):
        raise InvalidArgument(f"{field} contains control characters", field=field)
    return value


def _variants(value: int, limit: int) -> int:
    if not 0 <= value <= limit:
        raise InvalidArgument(f"variants must be 0 to {limit}, not {value}", field="variants")
    return max(1, value)


def _name(value: str, field: str) -> str:
    if value and not _NAME_RE.fullmatch(value):  # fullmatch: `$` lets "name\n" through
        raise InvalidArgument(f"{field} {value!r} is not a valid name", field=field)
    return value


def _model(value: str) -> str:
    """A model name (the generator checks that its backend has it)."""
    if value and not _MODEL_RE.fullmatch(value):
        raise InvalidArgument(f"model {value!r} is not a valid model name", field="model")
    return value


def _style(value: str, library: TemplateLibrary) -> str:
    known = [t.id for t in library.group("style")]
    if not value:
        return "cinematic"
    if value not in known and library.match("style", value) is None:
        raise InvalidArgument(f"unknown style {value!r}; known: {', '.join(known)}", field="style")
    return value


def _side(value: int, field: str) -> int:
    if value and not (16 <= value <= MAX_SIDE_PX and value % 2 == 0):
        raise InvalidArgument(
            f"{field} must be 0 (the backend's default) or an even number of pixels from 16 "
            f"to {MAX_SIDE_PX}, not {value}",
            field=field,
        )
    return value


def _fps(value: float) -> float:
    if value and not 0 < value <= MAX_FPS:
        raise InvalidArgument(
            f"fps must be 0 (the backend's default) or up to {MAX_FPS:g}, not {value:g}",
            field="fps",
        )
    return value


def _references(
    references: tuple[tuple[int, bytes], ...],
    shots: list[Shot],
    config: PrevisConfig,
    policy: CompliancePolicy,
) -> dict[str, bytes]:
    images: dict[str, bytes] = {}
    limit = config.max_reference_mb << 20
    for number, (order, image) in enumerate(references):
        field = f"references[{number}]"
        if not 0 <= order < len(shots):
            raise InvalidArgument(
                f"{field}.shot_order {order} is not a shot (the script makes "
                f"{len(shots)}, numbered from 0)",
                field=f"{field}.shot_order",
            )
        shot_id = shots[order].shot_id
        if shot_id in images:
            raise InvalidArgument(f"{field}: shot {shot_id} already has a reference", field=field)
        if not image or len(image) > limit:
            raise InvalidArgument(
                f"{field}.image has {len(image)} bytes; it must have 1 to {limit}",
                field=f"{field}.image",
                reason="IMAGE_TOO_LARGE" if image else "EMPTY_IMAGE",
            )
        policy.check_reference_image(image, field=f"{field}.image")  # decodes it
        images[shot_id] = image
    return images
