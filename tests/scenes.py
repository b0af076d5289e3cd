"""Generated captioned scenes the toolkit was never tuned on: one or two coloured shapes on a textured
background, five differently worded captions each, in a Karpathy-format JSON.

Unlike the demo data (``vision2seq.demo``: one shape on a plain grey background, left or right, three
captions) the shapes here sit anywhere, vary in size continuously, come in other colours and kinds, and
the captions name their vertical position or their arrangement. ``named_pairs`` reads the (colour,
shape) pairs a caption names, which is how the learning tests and ``measure_learning.py`` score captions.

With ``relations=True`` most captions of a two-object scene say where one object is relative to the other
("a red circle above a blue square", "a blue square below a red circle"), worded from either object, so a
caption can only get the relation right by knowing which object is where; ``stated_relation`` reads the
relation a caption states and ``relation_accuracy`` scores it against the references.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw

COLOURS = {
    "red": (210, 30, 30),
    "blue": (30, 60, 210),
    "green": (30, 160, 50),
    "yellow": (240, 220, 30),
    "white": (250, 250, 250),
    "black": (10, 10, 10),
}
SHAPES = ("circle", "square", "triangle", "diamond")

ONE = (
    "a {c0} {s0} near the {v0}.",
    "the picture shows a {c0} {s0}.",
    "there is one {c0} {s0} in this image.",
    "a single {c0} {s0} on a textured background.",
    "one {s0}, {c0}, near the {v0} of the picture.",
)
TWO = (
    "a {c0} {s0} and a {c1} {s1}.",
    "the picture shows a {c0} {s0} next to a {c1} {s1}.",
    "there are two shapes: a {c0} {s0} and a {c1} {s1}.",
    "a {c1} {s1} and a {c0} {s0} on a textured background.",
    "two objects, a {c0} {s0} with a {c1} {s1}.",
)

# Two objects with their relation: {r} is how object 0 relates to object 1, {q} the converse.
TWO_RELATIONS = (
    "a {c0} {s0} {r} a {c1} {s1}.",
    "the picture shows a {c1} {s1} {q} a {c0} {s0}.",
    "there are two shapes: a {c0} {s0} and a {c1} {s1}.",
    "a {c1} {s1} {q} a {c0} {s0} on a textured background.",
    "two objects, a {c0} {s0} {r} a {c1} {s1}.",
)
# Canonical relation of each phrase: (relation, whether the phrase's objects are in canonical order).
RELATIONS = {
    "to the left of": ("left of", True),
    "to the right of": ("left of", False),
    "above": ("above", True),
    "below": ("above", False),
}


def _draw(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, fill: tuple) -> None:
    if shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif shape == "square":
        draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
    else:
        draw.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=fill)


def draw_scene(
    rng: random.Random,
    size: int,
    max_objects: int = 2,
    radius: tuple[float, float] = (0.14, 0.3),
    shapes: Sequence[str] = SHAPES,
    spread: float = 1.0,
    relations: bool = False,
) -> tuple[Image.Image, list[str], list[dict]]:
    """One image, its five captions and its objects (colour, shape, centre and radius as shares of the side).

    ``radius`` is the range of a single object's radius (share of the side); ``spread`` how far from the
    centre it may sit (1: anywhere it fits, 0: centred); ``relations`` words two-object captions with the
    objects' relation (``TWO_RELATIONS``).
    """
    base = [rng.randint(100, 160) for _ in range(3)]
    image = Image.new("RGB", (size, size), tuple(base))
    draw = ImageDraw.Draw(image)
    for _ in range(size // 2):  # texture: faint specks so the background is not one flat colour
        x, y = rng.randrange(size), rng.randrange(size)
        draw.point((x, y), fill=tuple(min(255, max(0, b + rng.randint(-30, 30))) for b in base))
    n = rng.randint(1, max_objects)
    pairs = rng.sample([(c, s) for c in COLOURS for s in shapes], n)
    # Two objects take the two halves (left/right or top/bottom); one may sit anywhere.
    horizontal = rng.random() < 0.5
    attrs: dict[str, str] = {}
    objects: list[dict] = []
    for i, (colour, shape) in enumerate(pairs):
        r = size * rng.uniform(0.12, 0.2) if n == 2 else size * rng.uniform(*radius)
        if n == 1:
            free = spread * (size / 2 - r)
            cx, cy = size / 2 + rng.uniform(-free, free), size / 2 + rng.uniform(-free, free)
        else:
            lo, hi = (r, size / 2 - r * 0.5) if i == 0 else (size / 2 + r * 0.5, size - r)
            along, across = rng.uniform(lo, max(lo, hi)), rng.uniform(r, size - r)
            cx, cy = (along, across) if horizontal else (across, along)
        fill = tuple(min(255, max(0, v + rng.randint(-15, 15))) for v in COLOURS[colour])
        _draw(draw, shape, cx, cy, r, fill)
        objects.append({"colour": colour, "shape": shape, "x": cx / size, "y": cy / size, "r": r / size})
        attrs.update({f"c{i}": colour, f"s{i}": shape, f"v{i}": "top" if cy < size / 2 else "bottom"})
    # Object 0 always takes the first half: left of object 1, or above it.
    attrs.update(r="to the left of", q="to the right of") if horizontal else attrs.update(
        r="above", q="below"
    )
    templates = ONE if n == 1 else TWO_RELATIONS if relations else TWO
    return image, [t.format(**attrs) for t in templates], objects


def make_scenes(
    root: Path,
    n_train: int = 1500,
    n_val: int = 150,
    n_test: int = 200,
    size: int = 96,
    max_objects: int = 2,
    radius: tuple[float, float] = (0.14, 0.3),
    shapes: Sequence[str] = SHAPES,
    spread: float = 1.0,
    seed: int = 0,
    relations: bool = False,
) -> Path:
    """Write the images and ``dataset_scenes.json`` (Karpathy format, each image with its ``objects``
    beside the captions) under ``root``; return the JSON path."""
    rng = random.Random(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    images = []
    for i, split in enumerate(["train"] * n_train + ["val"] * n_val + ["test"] * n_test):
        image, captions, objects = draw_scene(rng, size, max_objects, radius, shapes, spread, relations)
        name = f"scene_{i:05d}.png"
        image.save(root / "images" / name)
        sentences = [{"raw": c} for c in captions]
        images.append(
            {"filename": name, "imgid": i, "split": split, "sentences": sentences, "objects": objects}
        )
    path = root / "dataset_scenes.json"
    path.write_text(json.dumps({"dataset": "scenes", "images": images}))
    return path


def named_pairs(caption: str) -> set[tuple[str, str]]:
    """The (colour, shape) pairs a caption names: a colour word followed (within two words) by a shape."""
    words = caption.lower().replace(",", " ").replace(".", " ").split()
    found = set()
    for i, word in enumerate(words):
        if word in COLOURS:
            shape = next((w for w in words[i + 1 : i + 3] if w in SHAPES), None)
            if shape is not None:
                found.add((word, shape))
        if word in SHAPES and i + 1 < len(words) and words[i + 1] in COLOURS:  # "one square, red"
            found.add((words[i + 1], word))
    return found


def truth(references: list[str]) -> set[tuple[str, str]]:
    """The (colour, shape) pairs of an image, from its first reference."""
    return named_pairs(references[0])


def colour_shape_accuracy(captions: dict[str, str], references: dict[str, list[str]]) -> float:
    """Share of images whose caption names exactly their (colour, shape) pairs."""
    hits = [named_pairs(captions[k]) == truth(references[k]) for k in captions]
    return sum(hits) / max(1, len(hits))


def stated_relation(caption: str) -> tuple[tuple[str, str], str, tuple[str, str]] | None:
    """The relation a caption states, canonical: ``((colour, shape), "left of" | "above", (colour, shape))``.

    "a blue square below a red circle" and "a red circle above a blue square" both give
    ``(("red", "circle"), "above", ("blue", "square"))``. None when the caption states no relation between
    two named objects.
    """
    text = " " + " ".join(caption.lower().replace(",", " ").replace(".", " ").split()) + " "
    for phrase, (relation, canonical) in RELATIONS.items():
        before, sep, after = text.partition(f" {phrase} ")
        if not sep:
            continue
        following = after.split()
        if following and following[0] in ("a", "an", "the"):
            following = following[1:]
        left, right = before.split()[-2:], following[:2]
        if len(left) < 2 or len(right) < 2 or left[0] not in COLOURS or right[0] not in COLOURS:
            continue
        if left[1] not in SHAPES or right[1] not in SHAPES:
            continue
        first, second = (left[0], left[1]), (right[0], right[1])
        return (first, relation, second) if canonical else (second, relation, first)
    return None


def true_relation(references: list[str]) -> tuple[tuple[str, str], str, tuple[str, str]] | None:
    """The relation the references state (the first that states one), canonical; None for one object."""
    return next((r for r in map(stated_relation, references) if r is not None), None)


def relation_holds(caption: str, objects: list[dict]) -> bool | None:
    """Whether the relation ``caption`` states is true of the picture: both named objects are in it and the
    first one's centre lies on the stated side of the second's. None when the caption states none.

    The references' wording does not enter: "a red circle above a blue square" holds wherever the circle
    is higher up, even in a scene whose references say it is to the left (``clear_relations``).
    """
    stated = stated_relation(caption)
    if stated is None:
        return None
    where = {(o["colour"], o["shape"]): o for o in objects}
    first, relation, second = stated
    if first == second or first not in where or second not in where:
        return False
    axis = "x" if relation == "left of" else "y"
    return where[first][axis] < where[second][axis]


def relation_accuracy(
    captions: dict[str, str], references: dict[str, list[str]], same_objects: bool = False
) -> tuple[float, int]:
    """Share of the captions stating a relation that state the references' one, and how many state one.

    Only images whose references state a relation count. A caption naming the wrong objects in a relation
    counts as wrong; with ``same_objects`` only captions relating the image's own two objects count, which
    separates knowing *where* from knowing *what* (without any position information, 25% of those would be
    right: two axes, two directions).
    """
    hits = []
    for key, caption in captions.items():
        truth_ = true_relation(references[key])
        stated = stated_relation(caption)
        if truth_ is None or stated is None:
            continue
        if same_objects and {stated[0], stated[2]} != {truth_[0], truth_[2]}:
            continue
        hits.append(stated == truth_)
    return sum(hits) / max(1, len(hits)), len(hits)


def clear_relations(annotations: Path) -> set[str]:
    """Keys (``imgid``) of the two-object images whose references state the relation along the axis on
    which the objects lie further apart.

    The generator places two objects in opposite halves along one axis and anywhere along the other, so in
    about one two-object image in six they lie further apart along the other axis: "a red circle above a
    blue square" where the square is mostly to its right. A caption saying "to the left of" there is
    wrong by the references and right by the picture; scoring the clear images alone separates that
    ambiguity from not knowing where things are.
    """
    keys = set()
    for image in json.loads(Path(annotations).read_text())["images"]:
        objects = image.get("objects", [])
        relation = true_relation([s["raw"] for s in image["sentences"]])
        if len(objects) != 2 or relation is None:
            continue
        dx, dy = (abs(objects[0][axis] - objects[1][axis]) for axis in ("x", "y"))
        if (dx >= dy) == (relation[1] == "left of"):
            keys.add(str(image["imgid"]))
    return keys
