"""Where an encoder's weights come from, parsed from one setting.

    checkpoint:/models/vit-b-32.safetensors   a file mounted from a volume (production)
    pretrained:laion2b_s34b_b79k              an open_clip pretrained tag (needs its cache or hub)
    random:0                                  explicit random initialisation with a seed

There is no default and no fallback: a missing or unreadable checkpoint stops start-up.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

WEIGHTS_FORMS = "checkpoint:/path/to/weights, pretrained:TAG, or random:SEED"

WeightsKind = Literal["checkpoint", "pretrained", "random"]


@dataclass(frozen=True)
class WeightsSpec:
    """A parsed weights setting.

    Attributes:
        kind: checkpoint, pretrained or random.
        ref: The checkpoint path, the pretrained tag, or the seed as text.
    """

    kind: WeightsKind
    ref: str

    @classmethod
    def parse(cls, text: str) -> WeightsSpec:
        """Parses `kind:ref`; raises ValueError saying which forms are accepted."""
        kind, sep, ref = text.strip().partition(":")
        if not text.strip():
            raise ValueError(
                f"no weights configured; choose {WEIGHTS_FORMS} (random weights give "
                "meaningless embeddings and are never chosen silently)"
            )
        if not sep or not ref.strip() or kind not in ("checkpoint", "pretrained", "random"):
            raise ValueError(f"{text!r} is not one of {WEIGHTS_FORMS}")
        if kind == "random" and not ref.strip().lstrip("-").isdigit():
            raise ValueError(f"random weights need an integer seed, got {ref!r}")
        return cls(kind, ref.strip())  # type: ignore[arg-type]

    @property
    def is_random(self) -> bool:
        return self.kind == "random"

    @property
    def seed(self) -> int:
        """The seed of random initialisation."""
        return int(self.ref)

    def identity(self) -> str:
        """A short stable name of these weights for the model id.

        A checkpoint is named by a prefix of its content hash, so a replaced file under the
        same path changes the model id (and callers can tell old vectors are stale).
        """
        if self.kind == "random":
            return f"random-seed-{self.ref}"
        if self.kind == "pretrained":
            return self.ref
        digest = hashlib.sha256()
        with Path(self.ref).open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        return f"ckpt-{digest.hexdigest()[:12]}"
