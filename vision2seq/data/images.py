"""Reading image files into RGB PIL images, with one-line errors naming the file and the problem."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from vision2seq.data.inputs import IMAGE_SUFFIXES, find_inputs
from vision2seq.errors import UserError

__all__ = ["IMAGE_SUFFIXES", "MAX_PIXELS", "ImageFiles", "ImageReadError", "find_images", "load_image"]

# The formats of those suffixes; Pillow never tries its other parsers on a file, whatever its name (EPS
# would run Ghostscript, and many others are rarely exercised). MPO is the multi-picture JPEG cameras
# write (recent Pillows open it through the JPEG entry). Image.init() registers every plugin once.
Image.init()
IMAGE_FORMATS = tuple(
    f for f in ("JPEG", "MPO", "PNG", "GIF", "BMP", "WEBP", "TIFF", "PPM") if f in Image.OPEN
)

# Refuse decompression bombs outright instead of PIL's default warn-then-error thresholds.
MAX_PIXELS = 178_956_970
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


class ImageReadError(UserError):
    """An image file that is missing, empty, not an image, truncated or too large."""


def load_image(path: str | Path) -> Image.Image:
    """Decode ``path`` fully into an RGB image, EXIF orientation applied (first frame of animations).

    Raises:
        ImageReadError: one line naming the file and the problem: missing, empty, not an image,
            truncated or corrupt, or declaring more than ``MAX_PIXELS`` pixels (refused before decoding,
            so a small file claiming a huge size never allocates it).
    """
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"{path}: file not found")
    if path.is_dir():
        raise ImageReadError(f"{path}: is a folder, not an image file")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path}: empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=IMAGE_FORMATS) as image:
                image.load()  # decode now so truncation is reported here, not in a worker later
                image = ImageOps.exif_transpose(image)
                return _to_rgb(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageReadError(f"{path}: image too large (over {MAX_PIXELS} pixels), refused") from None
    except UnidentifiedImageError:
        raise ImageReadError(f"{path}: {_unidentified_reason(path)}") from None
    except PermissionError:
        raise ImageReadError(f"{path}: permission denied") from None
    except MemoryError:
        raise ImageReadError(f"{path}: image too large to decode (out of memory), refused") from None
    except Exception as exc:
        # OSError/SyntaxError/ValueError are Pillow's usual "truncated/broken" signals, but malformed
        # files can surface as struct.error, IndexError, ... from a format plugin; one bad file must
        # never stop a batch, so every decoding failure becomes a one-line error naming the file.
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise ImageReadError(f"{path}: cannot decode image (truncated or corrupt?): {reason}") from None


# Unambiguous file signatures: a file that starts like this but does not open is a damaged image.
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)


def _unidentified_reason(path: Path) -> str:
    """Why Pillow identified no format: not an image at all, or a damaged file of a known format.

    For a damaged file the format's own parser is run once more (headers only, no pixels are decoded)
    to get its reason, e.g. ``broken PNG file (bad header checksum in b'tEXt')``.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as exc:
        return f"cannot read file ({exc.strerror or exc})"
    fmt = next((name for signature, name in _SIGNATURES if head.startswith(signature)), None)
    if fmt is None and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        fmt = "WEBP"
    if fmt is None:
        return f"not an image file (unrecognised format; supported: {', '.join(IMAGE_FORMATS)})"
    reason = "damaged header"
    factory = Image.OPEN.get(fmt, (None, None))[0]
    if factory is not None:
        try:
            with open(path, "rb") as f:
                factory(f, str(path)).close()
        except Exception as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
    return f"cannot decode image (truncated or corrupt {fmt} file?): {reason}"


def _scale_to_8bit(values: np.ndarray, integer: bool) -> np.ndarray:
    """32-bit greyscale (TIFF ``int32`` / ``float32``) to 0-255, by the range the values were meant in.

    PIL's own conversion clips to 0-255, so a float image in 0-1 decodes all black and 16-bit data
    in an int32 container all white. Integers are read as 8-, 16- or 32-bit data, whichever range
    holds them; floats in 0-1 (the usual convention) are scaled by 255, floats in 0-255 kept, any
    other floats (negative, or HDR above 255) stretched from their minimum to their maximum. NaN is 0.
    """
    values = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if integer:
        top = next((t for t in (255.0, 65535.0) if low >= 0 and high <= t), None)
        if top is None:  # negative or wider than 16 bits: the whole int32 range
            values, top = values - np.iinfo(np.int32).min, float(np.iinfo(np.uint32).max)
        scaled = values * (255.0 / top)
    elif low >= 0 and high <= 1:
        scaled = values * 255.0
    elif low >= 0 and high <= 255:
        scaled = values
    else:
        scaled = (values - low) * (255.0 / (high - low))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image.copy()
    if image.mode in ("I;16", "I;16B", "I;16L"):
        # 16-bit greyscale: scale to 8 bits instead of letting PIL clip everything to white.
        image = image.point(lambda v: v / 256).convert("L")
    elif image.mode in ("I", "F"):
        image = Image.fromarray(_scale_to_8bit(np.asarray(image), integer=image.mode == "I"), mode="L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, image).convert("RGB")
    return image.convert("RGB")


def find_images(inputs: list[str]) -> tuple[list[Path], list[str]]:
    """Expand files, folders (recursively, image suffixes only) and glob patterns into image paths.

    Returns:
        The paths in a stable order, and one error line per input that matched nothing or could not
        be listed (see `vision2seq.data.inputs.find_inputs`).
    """
    return find_inputs(inputs, IMAGE_SUFFIXES, what="image files")


class ImageFiles:
    """A map-style dataset of image files -> ``(index, tensor)``, or ``(index, error line)`` when bad.

    Decoding and transforms run in DataLoader workers; a bad file never stops the batch.
    """

    def __init__(self, paths: list[Path], transform) -> None:
        self.paths, self.transform = paths, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        try:
            return index, self.transform(load_image(self.paths[index]))
        except ImageReadError as exc:
            return index, str(exc)


def collate_good(items):
    """Batch the items that decoded; pass the errors through as ``(index, message)`` pairs."""
    import torch

    good = [(i, x) for i, x in items if not isinstance(x, str)]
    bad = [(i, x) for i, x in items if isinstance(x, str)]
    indices = torch.tensor([i for i, _ in good], dtype=torch.long)
    batch = torch.stack([x for _, x in good]) if good else None
    return indices, batch, bad
