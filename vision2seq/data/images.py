"""Reading image files into RGB PIL images, with one-line errors naming the file and the problem."""

from __future__ import annotations

import warnings
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from vision2seq.errors import UserError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")

# Refuse decompression bombs outright instead of PIL's default warn-then-error thresholds.
MAX_PIXELS = 178_956_970
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


class ImageReadError(UserError):
    """An image file that is missing, empty, not an image, truncated or too large."""


def load_image(path: str | Path) -> Image.Image:
    """Decode ``path`` fully into an RGB image, EXIF orientation applied (first frame of animations)."""
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
            with Image.open(path) as image:
                image.load()  # decode now so truncation is reported here, not in a worker later
                image = ImageOps.exif_transpose(image)
                return _to_rgb(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageReadError(f"{path}: image too large (over {MAX_PIXELS} pixels), refused") from None
    except UnidentifiedImageError:
        raise ImageReadError(f"{path}: not an image file (unrecognised format)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(f"{path}: cannot decode image (truncated or corrupt?): {exc}") from None


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image.copy()
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit greyscale: scale to 8 bits instead of letting PIL clip everything to white.
        image = image.point(lambda v: v / 256).convert("L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, image).convert("RGB")
    return image.convert("RGB")


def find_images(inputs: list[str]) -> tuple[list[Path], list[str]]:
    """Expand files, folders (recursively, image suffixes only) and glob patterns into image paths.

    Returns:
        The paths in a stable order, and one error line per input that matched nothing.
    """
    found: list[Path] = []
    errors: list[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                errors.append(f"{path}: folder contains no image files")
            found.extend(files)
        elif any(ch in item for ch in "*?["):
            parent = Path(item).anchor or "."
            pattern = str(Path(item).relative_to(parent)) if Path(item).is_absolute() else item
            files = sorted(p for p in Path(parent).glob(pattern) if p.is_file())
            if not files:
                errors.append(f"{item}: pattern matched no files")
            found.extend(files)
        else:
            found.append(path)  # a missing or bad file is reported when it is read
    return found, errors


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
