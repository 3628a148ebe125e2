"""A backend whose first clip of each prompt is deliberately bad, for the previs QA tests.

It renders with the animatic backend, then, the first time it sees a prompt, blurs every
frame of the clip (σ = 4 px): a soft, detail-less clip such as a failed generation gives,
which the previs sharpness check must catch and regenerate. Later clips of the same prompt
(new seeds) are left as rendered.
"""

from __future__ import annotations

from fractions import Fraction

import av
import cv2
import numpy as np

from clipmesh.generator.backends.animatic import AnimaticBackend
from clipmesh.generator.backends.base import RenderedVideo, TaskContext
from clipmesh.generator.jobs import GenerationSpec

BLUR_SIGMA_PX = 4.0


class BlurryFirstTryBackend(AnimaticBackend):
    """The animatic backend, with the first clip of every prompt blurred."""

    name = "blurry-first-try"

    def __init__(self) -> None:
        super().__init__(max_concurrent=2)
        self.seen_prompts: set[str] = set()
        self.blurred_jobs: list[str] = []

    async def run(self, spec: GenerationSpec, ctx: TaskContext) -> RenderedVideo:
        video = await super().run(spec, ctx)
        if spec.prompt not in self.seen_prompts:
            self.seen_prompts.add(spec.prompt)
            self.blurred_jobs.append(ctx.job_id)
            blur(video.path, video.fps)
        return video


def blur(path, fps: float) -> None:
    """Rewrites the MP4 at `path` with every frame Gaussian-blurred."""
    with av.open(str(path)) as source:
        frames = [f.to_ndarray(format="rgb24") for f in source.decode(video=0)]
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = 1 / rate
        for index, rgb in enumerate(frames):
            soft = cv2.GaussianBlur(rgb, (0, 0), BLUR_SIGMA_PX)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(soft), format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame.reformat(format="yuv420p")))
        container.mux(stream.encode(None))
