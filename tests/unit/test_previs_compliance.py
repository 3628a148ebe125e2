"""Compliance pre-filter: listed names and terms block a shot with a reason; faces are flagged."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from clipmesh.previs.compliance import FACE, REAL_PEOPLE, CompliancePolicy
from clipmesh.runtime.errors import InvalidArgument


@pytest.fixture(scope="module")
def policy() -> CompliancePolicy:
    return CompliancePolicy.load()


def png(grey: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(grey).save(buffer, format="PNG")
    return buffer.getvalue()


def drawn_face(size: int = 200) -> np.ndarray:
    """A soft cartoon face (bright oval, dark eyes and brows, mouth) that Haar detects."""
    grey = np.full((size, size), 60, np.uint8)
    centre = size // 2
    cv2.ellipse(grey, (centre, centre + 5), (60, 80), 0, 0, 360, 190, -1)
    for dx in (-25, 25):
        cv2.ellipse(grey, (centre + dx, centre - 15), (14, 7), 0, 0, 360, 40, -1)
        cv2.line(grey, (centre + dx - 16, centre - 32), (centre + dx + 16, centre - 32), 50, 5)
    cv2.ellipse(grey, (centre, centre + 15), (6, 14), 0, 0, 360, 150, -1)
    cv2.ellipse(grey, (centre, centre + 45), (22, 6), 0, 0, 360, 70, -1)
    return cv2.GaussianBlur(grey, (0, 0), 3)


@pytest.mark.parametrize(
    ("prompt", "name"),
    [
        ("Close-up of jane EXAMPLE walking in the rain", "Jane Example"),
        ("Ｊａｎｅ　Ｅｘａｍｐｌｅ waves", "Jane Example"),  # full-width, NFKC-normalised
        ("雨中，张示例走过街角", "张示例"),
    ],
)
def test_a_listed_name_blocks_with_a_reason_naming_it(
    policy: CompliancePolicy, prompt: str, name: str
) -> None:
    verdict = policy.screen(prompt)
    assert verdict.blocked
    assert [f.kind for f in verdict.findings] == [REAL_PEOPLE]
    assert name in verdict.reasons[0] and "prompt" in verdict.reasons[0]


def test_a_sensitive_term_reports_its_list_and_position(policy: CompliancePolicy) -> None:
    text = "A battlefield full of gore at dusk"
    [finding] = policy.check_text(text)
    assert (finding.kind, finding.term) == ("sensitive_terms", "gore")
    assert text[finding.start : finding.end] == "gore"


def test_latin_terms_match_whole_words_only() -> None:
    policy = CompliancePolicy({REAL_PEOPLE: ["ann"]})
    assert policy.check_text("The annual fair, Joanna and Hannah") == []
    assert [f.start for f in policy.check_text("Ann smiles; ANN说")] == [0, 12]


def test_clean_text_passes_and_is_never_altered(policy: CompliancePolicy) -> None:
    prompt = "Wide shot of a harbour at dawn, gulls over the water"
    verdict = policy.screen(prompt, "blurry, low quality")
    assert (verdict.blocked, verdict.reasons, verdict.findings) == (False, [], [])
    assert prompt == "Wide shot of a harbour at dawn, gulls over the water"


def test_a_term_in_the_negative_prompt_is_reported_but_does_not_block(
    policy: CompliancePolicy,
) -> None:
    verdict = policy.screen("A quiet street", negative_prompt="gore, blood")
    assert not verdict.blocked
    assert [f.field for f in verdict.findings] == ["negative_prompt"]


def test_extra_terms_and_files_from_configuration_work(tmp_path: Path) -> None:
    extra = tmp_path / "people.txt"
    extra.write_text("# local list\nZed Sample\n", encoding="utf-8")
    policy = CompliancePolicy.load(
        extra_paths={REAL_PEOPLE: [extra]}, extra_terms={"sensitive_terms": ["explosion"]}
    )
    verdict = policy.screen("Zed Sample runs from the explosion")
    assert verdict.blocked
    assert [f.term for f in verdict.findings] == ["Zed Sample", "explosion"]


def test_a_drawn_face_in_a_reference_image_is_flagged(policy: CompliancePolicy) -> None:
    verdict = policy.screen("A portrait", reference_images=[png(drawn_face())])
    assert verdict.blocked
    assert [f.kind for f in verdict.findings] == [FACE]
    assert "reference_images[0]" in verdict.reasons[0]


def test_an_image_without_a_face_is_not_flagged(policy: CompliancePolicy) -> None:
    xs = np.linspace(0, 255, 200, dtype=np.float32)
    gradient = np.tile(xs, (160, 1)).astype(np.uint8)
    assert policy.check_reference_image(png(gradient)) == []


def test_a_corrupt_image_is_a_clear_error(policy: CompliancePolicy) -> None:
    with pytest.raises(InvalidArgument) as error:
        policy.screen("A portrait", reference_images=[png(drawn_face())[:60]])
    assert error.value.reason == "CORRUPT_IMAGE"
    assert "reference_images[0]" in error.value.message


def test_an_oversized_image_is_refused_before_decoding() -> None:
    policy = CompliancePolicy({}, max_image_pixels=100)
    with pytest.raises(InvalidArgument) as error:
        policy.check_reference_image(png(drawn_face()))
    assert error.value.reason == "IMAGE_TOO_MANY_PIXELS"


def face_box(finding) -> tuple[int, int, int, int]:
    """(x, y, width, height) from a face finding's "face WxH px at (X, Y)"."""
    size, at = finding.term.removeprefix("face ").split(" px at ")
    width, height = (int(v) for v in size.split("x"))
    x, y = (int(v) for v in at.strip("()").split(", "))
    return x, y, width, height


def test_a_face_in_a_large_image_is_found_and_reported_in_the_callers_pixels(
    policy: CompliancePolicy,
) -> None:
    """Detection runs on a copy scaled to fit 1024 px; the finding is in the original's."""
    [small] = policy.check_reference_image(png(drawn_face(200)))
    large = cv2.resize(drawn_face(200), (3000, 3000), interpolation=cv2.INTER_LINEAR)
    [finding] = policy.check_reference_image(png(large))
    # The same face, 15 times larger: its box scales with it (to the detector's step).
    for at_200, at_3000 in zip(face_box(small), face_box(finding), strict=True):
        assert abs(at_3000 - 15 * at_200) <= 0.15 * 15 * max(at_200, 10), (small, finding)
    x, _, width, _ = face_box(finding)
    assert (finding.start, finding.end) == (x, x + width)
