"""The animatic's picture: a storyboard scene larger than the frame, a camera that moves over
it as the prompt's shot language says, its palette, and lens effects (fisheye).

`Storyboard(size, fps, frame_count, shot, seed=…).frame(i)` is pure and deterministic: the
same arguments give the same pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageColor, ImageDraw, ImageFilter

from clipmesh.generator.backends.shot_language import (
    CameraMove,
    Framing,
    Palette,
    ShotLanguage,
)


class _Colours:
    """A palette: sky top and bottom, hills, ground far and near, silhouettes, and the accent
    (sun or moon, stars, lit windows), as "#rrggbb" in that order."""

    def __init__(self, hex_colours: str, *, lights: bool = False) -> None:
        colours = [ImageColor.getrgb(value) for value in hex_colours.split()]
        (self.sky_top, self.sky_bottom, self.hills, self.ground_far, self.ground_near) = colours[:5]
        self.silhouette, self.accent = colours[5:]
        self.lights = lights  # stars in the sky and lit windows in the buildings


_COLOURS = {
    Palette.NEUTRAL: _Colours("#7896b9 #cdd2d4 #7d8791 #96968a #69695f #3c4246 #f8f4e4"),
    Palette.WARM: _Colours("#7d3c55 #fcac5c #965046 #ac663e #5c3228 #32191e #ffde8c"),
    Palette.COLD: _Colours("#285096 #acceec #5c7aa2 #cad8e8 #8ca0c0 #1e3252 #ecf6ff"),
    Palette.NIGHT: _Colours("#04081c #1a2a54 #101a34 #141a2e #080a14 #03050c #ece8c8", lights=True),
    Palette.GREEN: _Colours("#6ea2c0 #cae2ca #3e7048 #48843e #245224 #14321a #fafad4"),
    Palette.NEON: _Colours("#280048 #ca2098 #160a3e #200a3e #0a051e #0a051a #00f0ff", lights=True),
    Palette.GREY: _Colours("#6e6e74 #bababa #7a7a7e #848484 #5a5a5a #323238 #dedede"),
    Palette.ROMANTIC: _Colours("#c87aa2 #ffcad4 #d48ea2 #e8acb6 #b67084 #703252 #fff2f6"),
    Palette.TENSE: _Colours("#140508 #7a1414 #340a0c #2a0a0a #100505 #080203 #e22020"),
}
_SCENE_MARGIN = 1.6  # the scene is this many views wide and high: room for the camera to move
_FRAMING_SCALE = {  # output pixels per scene pixel at the start of the shot
    Framing.MEDIUM: 1.0,
    Framing.CLOSE_UP: 1.6,
    Framing.WIDE: 0.7,
    Framing.LOW_ANGLE: 1.0,
    Framing.HIGH_ANGLE: 1.0,
    Framing.OVER_THE_SHOULDER: 1.1,
    Framing.FISHEYE: 0.75,
}
# How much of the move the far layer makes (the near one makes all of it). A pan or tilt turns
# the camera, so everything moves alike; a dolly, crane or track carries it, so distant things
# move less; an orbit swings the background the other way.
_FAR_SHARE = {
    CameraMove.PUSH_IN: 0.6,
    CameraMove.PULL_OUT: 0.6,
    CameraMove.CRANE_UP: 0.4,
    CameraMove.TRACKING: 0.3,
    CameraMove.ORBIT: -0.3,
}


@dataclass(frozen=True)
class _Pose:
    x: float  # centre of the view, in scene pixels
    y: float
    scale: float  # output pixels per scene pixel
    angle_deg: float = 0.0


def _vertical(top, bottom, fractions: np.ndarray) -> np.ndarray:
    low, high = np.asarray(top, np.float32), np.asarray(bottom, np.float32)
    return low + (high - low) * fractions.clip(0, 1).astype(np.float32)[:, :, None]


class Storyboard:
    """The pictures of one animatic: a scene drawn once and a camera moving over it.

    Args:
        size: (width, height) of the frames in pixels.
        fps: Frames per second (the handheld shake is in real time).
        frame_count: Frames in the clip; the move spans them all, eased in and out.
        shot: The prompt's camera move, framing and palette.
        seed: Decides the scene's layout and the shake.
    """

    def __init__(
        self, size: tuple[int, int], fps: float, frame_count: int, shot: ShotLanguage, *, seed: int
    ) -> None:
        self.size, self.fps, self.frame_count, self.shot = size, fps, frame_count, shot
        self._rng = np.random.default_rng(seed)
        self._colours = _COLOURS[shot.palette]
        view_scale = min(1.0, _FRAMING_SCALE[shot.framing])  # a wide view needs a wider scene
        self._scene = tuple(math.ceil(side * _SCENE_MARGIN / view_scale) for side in size)
        self._unit = size[1] * _SCENE_MARGIN  # things are sized by it: a wide view shows more
        horizon = self._scene[1] * float(self._rng.uniform(0.55, 0.62))
        self._far = self._draw_far(horizon)
        self._near, self._mask, subject = self._draw_near(horizon)
        self._start = self._start_pose(subject, horizon)
        self._shake_phases = self._rng.uniform(0, 2 * math.pi, size=5)
        self._fisheye = _fisheye_map(*size) if shot.framing is Framing.FISHEYE else None

    def _draw_far(self, horizon: float) -> Image.Image:
        """Sky and ground gradients, a glowing sun (or moon), stars at night, two hill ranges."""
        (w, h), rng, colours = self._scene, self._rng, self._colours
        # A column and a row that broadcast: full grids would cost hundreds of MB at 1080p.
        ys, xs = np.arange(h, dtype=np.float32)[:, None], np.arange(w, dtype=np.float32)[None]
        far = np.where(
            (ys < horizon)[:, :, None],
            _vertical(colours.sky_top, colours.sky_bottom, ys / horizon),
            _vertical(colours.ground_far, colours.ground_near, (ys - horizon) / (h - horizon)),
        )
        sun_x, sun_y = w * float(rng.uniform(0.2, 0.8)), horizon * float(rng.uniform(0.2, 0.45))
        radius = self._unit / 18
        distance = np.hypot(xs - sun_x, ys - sun_y)
        glow = (np.exp(-((distance / (4 * radius)) ** 2)) * 0.7 * (ys < horizon))[:, :, None]
        far = far * (1 - glow) + np.asarray(colours.accent, np.float32) * glow
        far[distance <= radius] = colours.accent
        if colours.lights:
            for x, y in zip(
                rng.uniform(0, w, 150), rng.uniform(0, 0.8 * horizon, 150), strict=True
            ):
                far[int(y) : int(y) + 2, int(x) : int(x) + 2] = colours.accent
        picture = Image.fromarray(far.astype(np.uint8), "RGB")
        draw, hill_xs = ImageDraw.Draw(picture), np.linspace(0, w, 48)
        for paleness, height in ((0.5, 0.16), (0.0, 0.09)):  # the farther range first
            colour = tuple(
                round(c + (s - c) * paleness)
                for c, s in zip(colours.hills, colours.sky_bottom, strict=True)
            )
            phases, cycles = rng.uniform(0, 2 * math.pi, 3), rng.uniform(0.7, 3, 3)
            waves = sum(
                np.sin(2 * math.pi * c * hill_xs / w + p)
                for c, p in zip(cycles, phases, strict=True)
            )
            tops = horizon - height * self._unit * (0.55 + waves / 6)
            outline = [*zip(hill_xs, tops, strict=True), (w, horizon + 1), (0, horizon + 1)]
            draw.polygon(outline, fill=colour)
        return picture

    def _draw_near(self, horizon: float) -> tuple[Image.Image | None, Image.Image, tuple]:
        """The silhouettes' mask (trees, buildings, rocks and a standing figure), their colours
        where they are not flat (lit windows), and where the figure's head is."""
        (w, h), rng, colours = self._scene, self._rng, self._colours
        mask = Image.new("L", (w, h), 0)
        near = Image.new("RGB", (w, h), colours.silhouette) if colours.lights else None
        shapes, windows = ImageDraw.Draw(mask), (ImageDraw.Draw(near) if near else None)
        subject_x = w * rng.uniform(0.44, 0.56)
        unit = self._unit
        for _ in range(int(rng.integers(6, 11) * h / unit)):  # more things in a wider scene
            x, depth, kind = rng.uniform(0, w), rng.uniform(0.02, 0.3), int(rng.integers(3))
            if abs(x - subject_x) < 0.15 * unit:
                continue  # keep the figure clear
            base, size = horizon + 0.4 * depth * unit, unit * (0.1 + depth) * rng.uniform(0.8, 1.4)
            if kind == 0:  # a tree
                shapes.rectangle((x - 0.04 * size, base - 0.5 * size, x + 0.04 * size, base), 255)
                shapes.ellipse(
                    (x - 0.3 * size, base - 1.1 * size, x + 0.3 * size, base - 0.35 * size), 255
                )
            elif kind == 1:  # a building, lit at night
                left, top = x - 0.3 * size, base - 1.3 * size
                shapes.rectangle((left, top, x + 0.3 * size, base), 255)
                for wx in np.arange(left + 0.08 * size, x + 0.22 * size, 0.15 * size):
                    for wy in np.arange(top + 0.1 * size, base - 0.15 * size, 0.2 * size):
                        if windows is not None and rng.random() < 0.5:
                            box = (wx, wy, wx + 0.06 * size, wy + 0.08 * size)
                            windows.rectangle(box, colours.accent)
            else:  # a rock
                shapes.ellipse(
                    (x - 0.4 * size, base - 0.3 * size, x + 0.4 * size, base + 0.1 * size), 255
                )
        base, tall = horizon + 0.18 * unit, 0.32 * unit
        head_y, head_r = base - 0.9 * tall, 0.1 * tall
        shapes.ellipse(
            (subject_x - head_r, head_y - head_r, subject_x + head_r, head_y + head_r), 255
        )
        neck, shoulders = head_y + 0.9 * head_r, head_y + 1.8 * head_r
        body = [
            (-0.05, neck),
            (0.05, neck),
            (0.16, shoulders),
            (0.14, base),
            (-0.14, base),
            (-0.16, shoulders),
        ]
        shapes.polygon([(subject_x + dx * tall, y) for dx, y in body], 255)
        # A slight blur anti-aliases the edges, which the close-up magnifies.
        return near, mask.filter(ImageFilter.GaussianBlur(0.8)), (subject_x, head_y)

    def _start_pose(self, subject: tuple[float, float], horizon: float) -> _Pose:
        (width, height), framing = self.size, self.shot.framing
        scale = _FRAMING_SCALE[framing]
        x, y = subject[0], horizon - height / scale / 6  # the horizon on the lower third
        if framing is Framing.CLOSE_UP:
            y = subject[1] + 0.1 * height / scale
        elif framing is Framing.LOW_ANGLE:
            y = horizon - 0.35 * height / scale  # looking up: mostly sky
        elif framing is Framing.HIGH_ANGLE:
            y = horizon + 0.3 * height / scale  # looking down: mostly ground
        elif framing is Framing.OVER_THE_SHOULDER:
            x -= 0.15 * width / scale  # the figure right of the foreground shoulder
        return self._clamp(_Pose(x, y, scale))

    def _clamp(self, pose: _Pose) -> _Pose:
        """The pose moved (not scaled) so that its view stays inside the scene."""
        (width, height), (scene_w, scene_h) = self.size, self._scene
        turn = abs(math.sin(math.radians(pose.angle_deg)))
        half_w = (width + height * turn) / (2 * pose.scale)
        half_h = (height + width * turn) / (2 * pose.scale)
        x = min(max(pose.x, half_w), scene_w - half_w) if 2 * half_w < scene_w else scene_w / 2
        y = min(max(pose.y, half_h), scene_h - half_h) if 2 * half_h < scene_h else scene_h / 2
        return _Pose(x, y, pose.scale, pose.angle_deg)

    def _pose(self, index: int) -> _Pose:
        """Where the camera looks at frame `index` (the near layer's view)."""
        start, move = self._start, self.shot.move
        t = index / (self.frame_count - 1) if self.frame_count > 1 else 0.0
        u = t * t * (3 - 2 * t)  # eased in and out, as an operator moves
        sweep = 2 * u - 1  # -1 → 1 across the clip
        (width, height), (scene_w, scene_h) = self.size, self._scene
        half_w, half_h = width / (2 * start.scale), height / (2 * start.scale)
        reach_x = 0.9 * min(start.x - half_w, scene_w - half_w - start.x)
        reach_y = 0.9 * min(start.y - half_h, scene_h - half_h - start.y)
        x, y, scale, angle = start.x, start.y, start.scale, 0.0
        if move is CameraMove.PUSH_IN:
            scale *= (1.35 if self.shot.move_named else 1.15) ** u  # the default push is gentle
        elif move is CameraMove.PULL_OUT:
            scale *= 1.35 ** (1 - u)
        elif move in (CameraMove.PAN_LEFT, CameraMove.PAN_RIGHT):
            x += reach_x * sweep * (1 if move is CameraMove.PAN_RIGHT else -1)
        elif move in (CameraMove.TILT_UP, CameraMove.TILT_DOWN):
            y += reach_y * sweep * (1 if move is CameraMove.TILT_DOWN else -1)
        elif move is CameraMove.CRANE_UP:
            y -= 0.7 * reach_y * sweep
            scale *= 1.12 ** (1 - u)  # rising shows more of the scene
        elif move is CameraMove.TRACKING:
            x += 0.8 * reach_x * sweep
        elif move is CameraMove.ORBIT:
            x, angle = x + 0.5 * reach_x * sweep, 2.5 * sweep
        elif move is CameraMove.HANDHELD:
            x, y, angle = self._shake(index, x, y)
        return self._clamp(_Pose(x, y, scale, angle))

    def _shake(self, index: int, x: float, y: float) -> tuple[float, float, float]:
        """A small, smooth, seeded wobble: sums of slow sines, never noise per frame."""
        time_s, phases = index / self.fps, self._shake_phases
        amplitude = 0.012 * self.size[0] / self._start.scale
        wave = [
            math.sin(2 * math.pi * hz * time_s + p)
            for hz, p in zip((0.9, 2.3, 1.1, 2.9, 0.7), phases, strict=True)
        ]
        dx, dy = amplitude * (wave[0] + 0.5 * wave[1]), 0.7 * amplitude * (wave[2] + 0.5 * wave[3])
        return x + dx, y + dy, 0.6 * wave[4]

    def _far_pose(self, near: _Pose) -> _Pose:
        share, start = _FAR_SHARE.get(self.shot.move, 1.0), self._start
        x, y = start.x + (near.x - start.x) * share, start.y + (near.y - start.y) * share
        scale = start.scale * (near.scale / start.scale) ** share
        return self._clamp(_Pose(x, y, scale, near.angle_deg * share))

    def _view(
        self, layer: Image.Image, pose: _Pose, resample=Image.Resampling.BILINEAR
    ) -> Image.Image:
        width, height = self.size
        if pose.angle_deg == 0:  # a scaled crop costs half what an affine map does
            half_w, half_h = width / (2 * pose.scale), height / (2 * pose.scale)
            box = (pose.x - half_w, pose.y - half_h, pose.x + half_w, pose.y + half_h)
            return layer.resize(self.size, resample, box=box)
        angle = math.radians(pose.angle_deg)
        a, b = math.cos(angle) / pose.scale, -math.sin(angle) / pose.scale
        c = pose.x - a * width / 2 - b * height / 2
        f = pose.y + b * width / 2 - a * height / 2
        matrix = (a, b, c, -b, a, f)
        return layer.transform(self.size, Image.Transform.AFFINE, matrix, resample)

    def frame(self, index: int) -> Image.Image:
        """Frame `index` (from 0) of the clip, without the caption and label."""
        near_pose = self._pose(index)
        picture = self._view(self._far, self._far_pose(near_pose))
        mask = self._view(self._mask, near_pose)
        if self._near is None:  # flat silhouettes: paste the colour, no need to resample it
            picture.paste(self._colours.silhouette, (0, 0, *self.size), mask)
        else:
            # Nearest is enough (and 5× cheaper): the mask draws the edges, this only colours.
            near = self._view(self._near, near_pose, Image.Resampling.NEAREST)
            picture.paste(near, (0, 0), mask)
        if self._fisheye is not None:
            rows, columns = self._fisheye
            picture = Image.fromarray(np.asarray(picture)[rows, columns], "RGB")
        return picture


def _fisheye_map(width: int, height: int, strength: float = 0.45) -> tuple[np.ndarray, ...]:
    """Source rows and columns of a barrel distortion: the centre bulges, the edges squeeze."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    dx, dy = xs - width / 2 + 0.5, ys - height / 2 + 0.5
    radius = np.hypot(dx, dy) / math.hypot(width / 2, height / 2)
    factor = (1 + strength * radius**2) / (1 + strength)
    rows = np.clip(height / 2 + dy * factor, 0, height - 1).astype(np.intp)
    columns = np.clip(width / 2 + dx * factor, 0, width - 1).astype(np.intp)
    return rows, columns
