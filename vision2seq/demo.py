"""``vision2seq demo``: a built-in captioning dataset of coloured shapes, trained and evaluated end to end.

The generated images show one shape (circle, square or triangle) of some colour and size on the left
or right; each has three differently worded reference captions, in a Karpathy-format JSON. The demo
trains the configured captioner (``configs/demo.yaml``, random-init CNN: nothing is downloaded), then
prints generated captions next to references, and BLEU against a caption-the-most-common-sentence
baseline.
"""

from __future__ import annotations

import json
import random
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw

from vision2seq.config import ExperimentConfig, load_config
from vision2seq.errors import escape
from vision2seq.evaluation.caption_metrics import CaptionEvaluator

COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 210, 40),
    "purple": (150, 60, 190),
}
SHAPES = ("circle", "square", "triangle")
SIZES = {"small": 0.22, "large": 0.4}
SIDES = ("left", "right")
TEMPLATES = (
    "a {size} {colour} {shape} on the {side}.",
    "there is a {size} {colour} {shape} on the {side} side.",
    "a {colour} {shape} on the {side} of the picture.",
)


def draw_shape_image(rng: random.Random, size: int = 96) -> tuple[Image.Image, dict[str, str]]:
    """One random image and its attributes (colour, shape, size, side)."""
    attrs = {
        "colour": rng.choice(list(COLOURS)),
        "shape": rng.choice(SHAPES),
        "size": rng.choice(list(SIZES)),
        "side": rng.choice(SIDES),
    }
    grey = rng.randint(90, 150)
    image = Image.new("RGB", (size, size), (grey, grey, grey))
    draw = ImageDraw.Draw(image)
    r = SIZES[attrs["size"]] * size / 2 * rng.uniform(0.9, 1.1)
    cx = size * (0.27 if attrs["side"] == "left" else 0.73) + rng.uniform(-3, 3)
    cy = size * rng.uniform(0.35, 0.65)
    box = (cx - r, cy - r, cx + r, cy + r)
    colour = tuple(min(255, max(0, c + rng.randint(-20, 20))) for c in COLOURS[attrs["colour"]])
    if attrs["shape"] == "circle":
        draw.ellipse(box, fill=colour)
    elif attrs["shape"] == "square":
        draw.rectangle(box, fill=colour)
    else:
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    return image, attrs


def make_shapes_dataset(
    root: Path, n_train: int = 1200, n_val: int = 100, n_test: int = 100, seed: int = 0
) -> Path:
    """Write images and a Karpathy-format ``dataset_shapes.json`` under ``root``; return the JSON path."""
    rng = random.Random(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    images = []
    splits = ["train"] * n_train + ["val"] * n_val + ["test"] * n_test
    for i, split in enumerate(splits):
        image, attrs = draw_shape_image(rng)
        name = f"shape_{i:05d}.png"
        image.save(root / "images" / name)
        sentences = [{"raw": t.format(**attrs)} for t in TEMPLATES]
        images.append({"filename": name, "imgid": i, "split": split, "sentences": sentences})
    path = root / "dataset_shapes.json"
    path.write_text(json.dumps({"dataset": "shapes", "images": images}))
    return path


def demo_config_path() -> Path:
    return Path(__file__).parent / "configs" / "demo.yaml"


def train_and_evaluate(
    config_path: Path, output_dir: Path, data_keys: list[str], overrides: Sequence[str], progress: bool
) -> tuple[ExperimentConfig, Path, dict[str, float]]:
    """Train a demo's config on its generated data in ``output_dir/run`` (resuming an interrupted run),
    then evaluate ``best.pt`` on the test split; returns the config, ``best.pt`` and the test metrics."""
    from vision2seq.evaluate import evaluate_checkpoint
    from vision2seq.train import train

    run_dir = output_dir / "run"
    cache = f"data.cache_dir={output_dir / 'cache'}"
    config = load_config(config_path, [*data_keys, f"output_dir={run_dir}", cache, *overrides])
    train(config, resume=(run_dir / "last.pt").is_file(), progress=progress)
    best = run_dir / "best.pt"
    return config, best, evaluate_checkpoint(best, "test", device=config.train.device, progress=progress)


def run_demo(output_dir: Path, overrides: list[str] | tuple[str, ...] = (), progress: bool = True) -> dict:
    """Generate data, train, and print sample captions and BLEU. Returns the test metrics.

    Args:
        output_dir: folder for the data, feature cache and run (``vision2seq demo``: ``./demo_run``).
            The checkpoint stores absolute data paths, so it can be evaluated from any folder.
        overrides: ``key=value`` changes to ``configs/demo.yaml``.
        progress: show progress bars.
    """
    from vision2seq.inference.captioner import Captioner

    output_dir = Path(output_dir).expanduser().resolve()
    print(
        f"vision2seq demo: data, feature cache and checkpoints go to {escape(str(output_dir))}",
        file=sys.stderr,
    )
    data_dir = output_dir / "data"
    annotations = data_dir / "dataset_shapes.json"
    if not annotations.is_file():
        print(f"generating the shapes dataset in {escape(str(data_dir))} ...", file=sys.stderr)
        make_shapes_dataset(data_dir)
    data_keys = [f"data.annotations={annotations}", f"data.images={data_dir / 'images'}"]
    config, best, metrics = train_and_evaluate(demo_config_path(), output_dir, data_keys, overrides, progress)
    baseline = most_common_caption_baseline(annotations)

    records = json.loads(annotations.read_text())["images"]
    tests = [r for r in records if r["split"] == "test"][:8]
    captioner = Captioner.from_checkpoint(best, device=config.train.device)
    captions = captioner.caption([data_dir / "images" / r["filename"] for r in tests])
    print("\nsample captions (generated | first reference):")
    for record, caption in zip(tests, captions, strict=True):
        print(f"  {record['filename']}: {caption:<45} | {record['sentences'][0]['raw']}")
    print(f"\n{'metric':<8} {'model':>7} {'most-common-caption baseline':>30}")
    for key in ("bleu_1", "bleu_2", "bleu_3", "bleu_4"):
        print(f"{key:<8} {metrics[key]:>7.4f} {baseline[key]:>30.4f}")
    example = escape(str(data_dir / "images" / tests[0]["filename"]))
    print(
        f"\ncheckpoint: {escape(str(best))}\n"
        "This model knows only the generated pictures: one circle, square or triangle, red, green, blue,\n"
        "yellow or purple, on the left or right of a grey background. A caption of any other image (a\n"
        "photo of yours) is still a sentence about a coloured shape, and means nothing; for real photos\n"
        "train on Flickr8k or COCO (docs/captioning.md, docs/datasets.md).\n"
        f"caption images with it: vision2seq caption --checkpoint {escape(str(best))} {example}"
    )
    return metrics


def most_common_caption_baseline(annotations: Path, split: str = "test") -> dict[str, float]:
    """BLEU of captioning every ``split`` image with the most frequent training caption."""
    images = json.loads(annotations.read_text())["images"]
    train = [s["raw"] for im in images if im["split"] == "train" for s in im["sentences"]]
    tests = {str(im["imgid"]): [s["raw"] for s in im["sentences"]] for im in images if im["split"] == split}
    return most_common_caption_scores(train, tests)


def most_common_caption_scores(train: list[str], references: dict[str, list[str]]) -> dict[str, float]:
    """Caption metrics of giving every item of ``references`` (key -> its reference captions) the most
    frequent of the ``train`` captions."""
    caption = Counter(train).most_common(1)[0][0]
    evaluator = CaptionEvaluator()
    evaluator.update({key: caption for key in references}, references)
    return evaluator.compute()
