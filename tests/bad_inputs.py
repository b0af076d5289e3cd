"""Generators of bad and unusual image files for the bad-input tests (videos: see ``video_fixtures``).

Every ``make_*`` function writes one small file into a folder and returns its path. ``BAD_IMAGES`` maps a
case name to its generator and the reason the one-line error must give; ``ODD_IMAGES`` maps a case that
must decode to its generator and the (width, height) it must decode to.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

SIZE = (48, 32)  # width, height of the generated pictures (not square, so a rotation shows)


def picture(size: tuple[int, int] = SIZE, seed: int = 0) -> Image.Image:
    """An RGB test picture: a colour gradient, with a red block in the top-left corner."""
    w, h = size
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 255, w, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 255, h, dtype=np.float32)[:, None, None]
    pixels = np.concatenate([np.broadcast_to(x, (h, w, 1)), np.broadcast_to(y, (h, w, 1))], axis=2)
    pixels = np.concatenate([pixels, np.full((h, w, 1), 128, np.float32)], axis=2)
    pixels += rng.normal(0, 4, pixels.shape)
    array = np.clip(pixels, 0, 255).astype(np.uint8)
    array[: h // 4, : w // 4] = (255, 0, 0)
    return Image.fromarray(array)


# --- files that must be refused ---------------------------------------------------------------


def make_missing(folder: Path) -> Path:
    return folder / "missing.jpg"


def make_empty(folder: Path) -> Path:
    path = folder / "empty.jpg"
    path.write_bytes(b"")
    return path


def make_truncated_jpeg(folder: Path) -> Path:
    """The first half of a JPEG: the header is intact, the scan data breaks off."""
    data = io.BytesIO()
    picture((96, 64), seed=1).save(data, "JPEG", quality=95)
    path = folder / "truncated.jpg"
    path.write_bytes(data.getvalue()[: len(data.getvalue()) // 2])
    return path


def make_png_bad_crc(folder: Path) -> Path:
    """A PNG whose ``tEXt`` chunk was damaged after writing: its CRC no longer matches."""
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "a damaged chunk")
    data = io.BytesIO()
    picture().save(data, "PNG", pnginfo=info)
    raw = bytearray(data.getvalue())
    raw[raw.find(b"tEXt") + 6] ^= 0x20
    path = folder / "bad_crc.png"
    path.write_bytes(bytes(raw))
    return path


def make_text_as_jpeg(folder: Path) -> Path:
    path = folder / "notes.jpg"
    path.write_text("this is a text file, not a photo\n" * 10)
    return path


def png_declaring(width: int, height: int) -> bytes:
    """A tiny valid-looking PNG whose header declares ``width`` x ``height`` RGB pixels."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
        + chunk(b"IEND", b"")
    )


def make_bomb(folder: Path) -> Path:
    """A 100-byte PNG claiming 100000 x 100000 pixels (30 GB decoded): a decompression bomb."""
    path = folder / "bomb.png"
    path.write_bytes(png_declaring(100_000, 100_000))
    return path


BAD_IMAGES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "missing": (make_missing, "file not found"),
    "empty": (make_empty, "empty file"),
    "truncated_jpeg": (make_truncated_jpeg, "truncated"),
    "png_bad_crc": (make_png_bad_crc, "bad header checksum in b'tEXt'"),
    "text_as_jpeg": (make_text_as_jpeg, "not an image file"),
    "bomb": (make_bomb, "image too large"),
}


# --- unusual files that must decode -----------------------------------------------------------


def make_grayscale(folder: Path) -> Path:
    path = folder / "gray.png"
    picture().convert("L").save(path)
    return path


def make_rgba(folder: Path) -> Path:
    """Half-transparent: composited onto white when converted."""
    image = picture().convert("RGBA")
    image.putalpha(128)
    path = folder / "rgba.png"
    image.save(path)
    return path


def make_palette(folder: Path) -> Path:
    path = folder / "palette.png"
    picture().convert("P", palette=Image.Palette.ADAPTIVE, colors=16).save(path)
    return path


def make_cmyk_jpeg(folder: Path) -> Path:
    path = folder / "cmyk.jpg"
    picture().convert("CMYK").save(path, quality=95)
    return path


def make_png16(folder: Path) -> Path:
    """16-bit greyscale: a horizontal ramp over the whole 0..65535 range."""
    w, h = SIZE
    ramp = np.tile(np.linspace(0, 65535, w).astype(np.uint16), (h, 1))
    path = folder / "deep16.png"
    Image.fromarray(ramp).save(path)
    return path


def _ramp(dtype: type, top: float) -> np.ndarray:
    """A horizontal ramp from 0 to ``top`` across the picture."""
    w, h = SIZE
    return np.tile(np.linspace(0, top, w).astype(dtype), (h, 1))


def make_tiff_float01(folder: Path) -> Path:
    """32-bit float greyscale TIFF, values 0..1 (the usual float convention)."""
    path = folder / "float01.tif"
    Image.fromarray(_ramp(np.float32, 1.0), mode="F").save(path)
    return path


def make_tiff_float255(folder: Path) -> Path:
    """32-bit float greyscale TIFF, values 0..255."""
    path = folder / "float255.tif"
    Image.fromarray(_ramp(np.float32, 255.0), mode="F").save(path)
    return path


def make_tiff_int32_8bit(folder: Path) -> Path:
    """32-bit integer greyscale TIFF holding 8-bit values."""
    path = folder / "int32_8bit.tif"
    Image.fromarray(_ramp(np.int32, 255), mode="I").save(path)
    return path


def make_tiff_int32_16bit(folder: Path) -> Path:
    """32-bit integer greyscale TIFF holding 16-bit values."""
    path = folder / "int32_16bit.tif"
    Image.fromarray(_ramp(np.int32, 65535), mode="I").save(path)
    return path


def make_exif_rotated(folder: Path) -> Path:
    """A landscape JPEG stored sideways with EXIF orientation 6 (display rotated 90 degrees clockwise)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    path = folder / "exif_rotated.jpg"
    picture().save(path, quality=95, exif=exif.tobytes())
    return path


def make_one_pixel(folder: Path) -> Path:
    path = folder / "one_pixel.png"
    Image.new("RGB", (1, 1), (0, 128, 255)).save(path)
    return path


def make_animated_gif(folder: Path) -> Path:
    """Three frames: red, green, blue; the first frame is the one to caption."""
    frames = [Image.new("RGB", SIZE, colour) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    path = folder / "animated.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return path


ODD_IMAGES: dict[str, tuple[Callable[[Path], Path], tuple[int, int]]] = {
    "grayscale": (make_grayscale, SIZE),
    "rgba": (make_rgba, SIZE),
    "palette": (make_palette, SIZE),
    "cmyk_jpeg": (make_cmyk_jpeg, SIZE),
    "png16": (make_png16, SIZE),
    "tiff_float01": (make_tiff_float01, SIZE),
    "tiff_float255": (make_tiff_float255, SIZE),
    "tiff_int32_8bit": (make_tiff_int32_8bit, SIZE),
    "tiff_int32_16bit": (make_tiff_int32_16bit, SIZE),
    "exif_rotated": (make_exif_rotated, (SIZE[1], SIZE[0])),
    "one_pixel": (make_one_pixel, (1, 1)),
    "animated_gif": (make_animated_gif, SIZE),
}


def make_good(folder: Path, name: str = "good.png", seed: int = 0) -> Path:
    """An ordinary RGB PNG."""
    path = folder / name
    picture(seed=seed).save(path)
    return path
