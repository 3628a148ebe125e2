"""Writes the seed corpora in fuzz/corpus/<harness>/: small, valid inputs of every kind.

Seeds are made here rather than committed as opaque binaries, so each one says what it is.
Every seed is a few KB at most; libFuzzer mutates from them.

    python -m fuzz.make_corpus        # rewrites fuzz/corpus/
"""

from __future__ import annotations

import shutil
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from clipmesh.demo.synthetic import encode_image, gradient_image
from clipmesh_api.common.v1 import common_pb2
from fuzz.common import CORPUS_DIR

MAX_SEED_BYTES = 8192


def image_seeds() -> dict[str, bytes]:
    """The accepted formats in their common variants, and formats only previs opens."""
    rgb = gradient_image(16, 12, seed=1)
    rgba = rgb.copy()
    rgba.putalpha(Image.linear_gradient("L").resize(rgb.size))
    grey16 = Image.fromarray((np.arange(64, dtype=np.uint16) * 1000).reshape(8, 8))
    frames = [gradient_image(8, 8, seed=s) for s in (1, 2)]
    seeds = {
        "rgb.png": encode_image(rgb, "PNG"),
        "rgba.png": encode_image(rgba, "PNG"),
        "palette.png": encode_image(rgb.convert("P", colors=8), "PNG"),
        "grey16.png": encode_image(grey16, "PNG"),
        "interlaced.png": encode_image(rgb, "PNG", interlace=1),
        "animated.png": encode_image(frames[0], "PNG", save_all=True, append_images=frames[1:]),
        "tall.png": encode_image(gradient_image(1, 64, seed=4), "PNG"),
        "baseline.jpg": encode_image(rgb, "JPEG", quality=50),
        "progressive.jpg": encode_image(rgb, "JPEG", quality=50, progressive=True),
        "grey.jpg": encode_image(rgb.convert("L"), "JPEG", quality=50),
        "cmyk.jpg": encode_image(rgb.convert("CMYK"), "JPEG", quality=50),
        "exif_rotated.jpg": encode_image(rgb, "JPEG", quality=50, exif=_exif_rotated()),
        "lossy.webp": encode_image(rgb, "WEBP", quality=50),
        "lossless.webp": encode_image(rgb, "WEBP", lossless=True),
        "alpha.webp": encode_image(rgba, "WEBP", quality=50),
        "animated.webp": encode_image(frames[0], "WEBP", save_all=True, append_images=frames[1:]),
        # Formats both paths refuse: each must be refused cleanly, never half-parsed.
        "small.gif": encode_image(rgb.convert("P"), "GIF"),
        "small.bmp": encode_image(rgb, "BMP"),
        "small.tiff": encode_image(rgb, "TIFF"),
        "small.ico": encode_image(rgb.resize((16, 16)), "ICO", sizes=[(16, 16)]),
    }
    return seeds


def _exif_rotated() -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise
    return exif


def _video(
    container_format: str, codec: str, *, pixel_format: str = "yuv420p", **options: str
) -> bytes:
    """Eight 32×32 frames at 4 fps, a cut after the fourth, in the given container."""
    # A real file: `+faststart` rewrites the file after writing it.
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "seed"
        _write_video(path, container_format, codec, pixel_format, options)
        return path.read_bytes()


def _write_video(
    path: Path, container_format: str, codec: str, pixel_format: str, options: dict[str, str]
) -> None:
    # bitexact: no random segment ids or dates, so the seeds come out the same every time.
    options = {"fflags": "+bitexact", **options}
    with av.open(str(path), "w", format=container_format, options=options) as container:
        stream = container.add_stream(codec, rate=4)
        stream.width, stream.height, stream.pix_fmt = 32, 32, pixel_format
        stream.codec_context.time_base = Fraction(1, 4)
        if codec == "libx264":
            stream.options = {"preset": "ultrafast", "x264-params": "keyint=4"}
        for index in range(8):
            image = gradient_image(32, 32, seed=index // 4)
            frame = av.VideoFrame.from_image(image)
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def video_seeds() -> dict[str, bytes]:
    """Each container `open_video` accepts, with a codec it commonly carries."""
    return {
        "h264.mp4": _video("mp4", "libx264"),
        "faststart.mp4": _video("mp4", "mpeg4", movflags="faststart"),
        "mjpeg.mov": _video("mov", "mjpeg", pixel_format="yuvj420p"),
        "vp9.webm": _video("webm", "libvpx-vp9"),
        "mpeg4.mkv": _video("matroska", "mpeg4"),
        "mpeg2.ts": _video("mpegts", "mpeg2video"),
        "mpeg2.mpg": _video("mpeg", "mpeg2video"),
        "xvid.avi": _video("avi", "mpeg4"),
        "flv1.flv": _video("flv", "flv"),
        "msmpeg4.asf": _video("asf", "msmpeg4v2"),
    }


def _script(text: str, *, format: int = 0, max_shot: int = 2, run: int = 0, unit: int = 0) -> bytes:
    """A script input in `fuzz_script`'s layout: format 0 auto, 1 plain, 2 fountain; `run` 1-4
    makes the script 256, 1024, 4096 or 16384 characters long, repeating its last `unit + 1`."""
    options = format | max_shot << 2 | (0xC0 | (run - 1) << 4 if run else 0)
    return bytes([options, unit]) + text.encode()


def script_seeds() -> dict[str, bytes]:
    """Plain Chinese and English, Fountain, and the shapes the splitter has to cut."""
    demo = Path(__file__).resolve().parents[1] / "services/clipmesh/demo/scripts"
    zh = (demo / "rain_cafe.zh.txt").read_text()
    fountain = (demo / "the_letter.fountain").read_text()
    return {
        "rain_cafe.zh.txt": _script(zh),
        "rain_cafe.plain.txt": _script(zh, format=1, max_shot=1),
        "the_letter.fountain": _script(fountain, format=2),
        "the_letter.auto": _script(fountain, max_shot=3),
        "en_plain.txt": _script(
            "Scene 1: Kitchen - night\nANNA: Is he gone?\nMark (quietly): Not yet.\n\n"
            'CLOSE-UP on the kettle. She says "go".'
        ),
        "zh_dialogue.txt": _script(
            "场景一 街道 外 黄昏\n人物：林夏、老陈\n老陈（轻声）：你还记得吗？\n林夏说：“记得。”"
        ),
        "numbered.txt": _script("1. 咖啡馆 内 夜\n远景，雨夜。\n2. 屋顶 外 日\n俯拍，两人。"),
        "dual_dialogue.fountain": _script(
            "INT. ROOM - DAY\n\nANNA\nHi.\n\nMARK ^\nHello.\n\nCUT TO:\n\n.FLASHBACK\n\n"
            "WIDE SHOT\nThe city.\n\n@mcclane\n(beat)\nYippee.\n",
            format=2,
        ),
        "long_sentence.txt": _script("The train pulls away, slowly, " * 2, run=3, unit=7),
        "long_cjk.txt": _script("雨一直下，" * 2, max_shot=0, run=2, unit=2),
        # Runs that made the splitter and the quote finder quadratic (see fuzz/README.md).
        "dots.txt": _script("She waits.", run=4),
        "open_quotes.txt": _script("林夏说：“", run=4),
    }


def _filter(*clauses: common_pb2.FilterClause) -> bytes:
    return common_pb2.MetadataFilter(clauses=clauses).SerializeToString()


def filter_seeds() -> dict[str, bytes]:
    """One clause of each kind on each kind of field, and a filter that combines them."""
    clause = common_pb2.FilterClause
    string_list = common_pb2.StringList
    numeric_range = common_pb2.NumericRange
    seeds = {
        "equals_title.pb": _filter(clause(field="title", equals="雨中咖啡馆")),
        "any_of_source.pb": _filter(
            clause(field="source", any_of=string_list(values=["ingested", "generated"]))
        ),
        "not_video_id.pb": _filter(clause(field="video_id", equals="v1", negate=True)),
        "equals_width.pb": _filter(clause(field="width", equals="1920")),
        "range_duration.pb": _filter(
            clause(field="duration_s", range=numeric_range(min=1.5, max=60, max_exclusive=True))
        ),
        "range_create_time.pb": _filter(clause(field="create_time", range=numeric_range(min=0))),
        "label_equals.pb": _filter(clause(field="labels.lang", equals="zh")),
        "label_range.pb": _filter(
            clause(field="labels.year", range=numeric_range(min=2000, max=2030), negate=True)
        ),
        "label_escapes.pb": _filter(clause(field="labels.a:b", equals='q"\\\n\t')),
    }
    seeds["combined.pb"] = b"".join(seeds.values())  # concatenated messages merge
    return seeds


SEEDS = {
    "images": image_seeds,
    "video_probe": video_seeds,
    "script": script_seeds,
    "filters": filter_seeds,
}


def write_corpus(corpus_dir: Path = CORPUS_DIR) -> dict[str, int]:
    """Rewrites every harness's seed folder; returns the number of seeds per harness."""
    counts = {}
    for harness, make in SEEDS.items():
        folder = corpus_dir / harness
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        seeds = make()
        for name, data in seeds.items():
            if len(data) > MAX_SEED_BYTES:
                raise ValueError(f"{harness}/{name} is {len(data)} bytes; keep seeds small")
            (folder / name).write_bytes(data)
        counts[harness] = len(seeds)
    return counts


if __name__ == "__main__":
    for harness, count in write_corpus().items():
        print(f"{harness}: {count} seeds in {CORPUS_DIR / harness}")
