"""``vision2seq demo --task video`` and ``--task video-captioning``: generated clips, trained and evaluated
end to end, nothing downloaded.

- ``video``: clips of a square moving left, right, up or down in the UCF101 layout
  (:func:`vision2seq.synthetic.make_motion_videos`); an LSTM clip classifier (``configs/demo_video.yaml``)
  is trained on them and its test top-1 printed beside the most-frequent-class baseline.
- ``video-captioning``: clips of a red, green, blue or yellow square moving in one of those directions,
  captioned with both, in the MSR-VTT layout (:func:`vision2seq.synthetic.make_motion_caption_videos`);
  a video captioner (``configs/demo_video_captioning.yaml``) is trained, and its BLEU printed beside the
  most-common-caption baseline, with how often its captions name the right colour and direction.

Both end by saying what the model knows and how to run it on other clips.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from vision2seq.demo import most_common_caption_scores, train_and_evaluate
from vision2seq.errors import escape

CONFIGS = Path(__file__).parent / "configs"
TASKS = {"video": "demo_video.yaml", "video-captioning": "demo_video_captioning.yaml"}
# Groups (gXX) per class of the classification demo: 2 test groups, 10 to train and validate on. With 6
# training groups test top-1 was 0.54-0.63 (the LSTM memorised the few clips), with 14 0.83.
GROUPS = 12


def video_demo_config_path(task: str) -> Path:
    """The shipped config of a video demo task (``video`` or ``video-captioning``)."""
    return CONFIGS / TASKS[task]


def _say(text: str) -> None:
    print(text, file=sys.stderr)


def run_video_demo(
    output_dir: Path, overrides: list[str] | tuple[str, ...] = (), progress: bool = True
) -> dict[str, Any]:
    """Generate moving-square clips, train the clip classifier, print its test accuracy; return metrics.

    Args:
        output_dir: folder for the data, feature cache and run (``vision2seq demo --task video``:
            ``./demo_video_run``); the checkpoint stores absolute data paths.
        overrides: ``key=value`` changes to ``configs/demo_video.yaml``.
        progress: show progress bars.
    """
    from vision2seq.inference.classifier import VideoClassifier
    from vision2seq.synthetic import make_motion_videos

    output_dir = Path(output_dir).expanduser().resolve()
    _say(f"vision2seq demo: data, feature cache and checkpoints go to {escape(str(output_dir))}")
    data = output_dir / "data"
    videos, lists = data / "UCF-101", data / "ucfTrainTestlist"
    if not (lists / "testlist01.txt").is_file():
        _say(f"generating moving-square clips (UCF101 layout) in {escape(str(data))} ...")
        make_motion_videos(data, groups=GROUPS, clips_per_group=3, test_groups=(1, 2))
    data_keys = [f"data.videos={videos}", f"data.annotations={lists}"]
    config_path = video_demo_config_path("video")
    config, best, metrics = train_and_evaluate(config_path, output_dir, data_keys, overrides, progress)

    train_labels = [line.split("/")[0] for line in (lists / "trainlist01.txt").read_text().split()[::2]]
    tests = (lists / "testlist01.txt").read_text().split()
    majority = Counter(train_labels).most_common(1)[0][0]
    baseline = sum(path.split("/")[0] == majority for path in tests) / len(tests)

    classifier = VideoClassifier.from_checkpoint(best, device=config.train.device)
    samples = tests[:: max(1, len(tests) // 8)][:8]
    print("\nsample test clips (true class | predicted, score):")
    for result in classifier.classify([videos / path for path in samples], top_k=1, num_workers=0):
        label, score = result.labels[0]
        print(f"  {Path(result.file).name:<26} {Path(result.file).parent.name:<10} | {label} {score:.2f}")
    print(f"\n{'metric':<20} {'model':>7} {'most-frequent-class baseline':>30}")
    print(f"{'top1':<20} {metrics['top1']:>7.4f} {baseline:>30.4f}")
    print(f"{'mean_class_accuracy':<20} {metrics['mean_class_accuracy']:>7.4f} {1 / 4:>30.4f}")
    example = escape(str(videos / tests[0]))
    print(
        f"\ncheckpoint: {escape(str(best))}\n"
        "This model knows only the generated clips: a square moving left, right, up or down on a plain\n"
        "background (classes MoveLeft, MoveRight, MoveUp, MoveDown). Any other clip still gets one of\n"
        "those four labels, which then means nothing; for real actions train on your own labelled clips\n"
        "(docs/video-classification.md, docs/datasets.md).\n"
        f"classify clips with it: vision2seq classify --checkpoint {escape(str(best))} {example}\n"
        f"  frame by frame:      vision2seq classify --checkpoint {escape(str(best))} --stream {example}"
    )
    return metrics


def run_video_captioning_demo(
    output_dir: Path, overrides: list[str] | tuple[str, ...] = (), progress: bool = True
) -> dict[str, Any]:
    """Generate captioned moving-square clips, train a video captioner, print BLEU; return the metrics.

    Args:
        output_dir: folder for the data, feature cache and run (``vision2seq demo --task
            video-captioning``: ``./demo_video_captioning_run``).
        overrides: ``key=value`` changes to ``configs/demo_video_captioning.yaml``.
        progress: show progress bars.
    """
    from vision2seq.inference.video_captioner import VideoCaptioner
    from vision2seq.synthetic import CAPTION_COLOURS, make_motion_caption_videos

    output_dir = Path(output_dir).expanduser().resolve()
    _say(f"vision2seq demo: data, feature cache and checkpoints go to {escape(str(output_dir))}")
    data = output_dir / "data"
    videos, annotations = data / "videos", data / "videodatainfo.json"
    if not annotations.is_file():
        _say(f"generating captioned moving-square clips (MSR-VTT layout) in {escape(str(data))} ...")
        make_motion_caption_videos(data)
    data_keys = [f"data.videos={videos}", f"data.annotations={annotations}"]
    config_path = video_demo_config_path("video-captioning")
    config, best, metrics = train_and_evaluate(config_path, output_dir, data_keys, overrides, progress)

    info = json.loads(annotations.read_text())
    split_of = {v["video_id"]: v["split"] for v in info["videos"]}
    references: dict[str, list[str]] = {}
    for sentence in info["sentences"]:
        references.setdefault(sentence["video_id"], []).append(sentence["caption"])
    train_captions = [c for key, refs in references.items() if split_of[key] == "train" for c in refs]
    tests = [key for key in references if split_of[key] == "test"]
    baseline = most_common_caption_scores(train_captions, {k: references[k] for k in tests})

    captioner = VideoCaptioner.from_checkpoint(best, device=config.train.device)
    captions = captioner.caption([videos / f"{key}.mp4" for key in tests])
    right = sum(
        _names(caption, list(CAPTION_COLOURS)) == key.split("_")[1]
        and _names(caption, ["left", "right", "up", "down"]) == key.split("_")[2]
        for key, caption in zip(tests, captions, strict=True)
    )
    print("\nsample test clips (generated | first reference):")
    # Clips are listed colour by colour, direction by direction: a step of 5 visits all of both.
    for i in range(min(8, len(tests))):
        key, caption = tests[5 * i % len(tests)], captions[5 * i % len(tests)]
        print(f"  {key + '.mp4':<26} {caption:<34} | {references[key][0]}")
    print(f"\n{'metric':<8} {'model':>7} {'most-common-caption baseline':>30}")
    for key in ("bleu_1", "bleu_4", "cider"):
        print(f"{key:<8} {metrics[key]:>7.4f} {baseline[key]:>30.4f}")
    print(f"colour and direction right: {right} of {len(tests)} test clips")
    example = escape(str(videos / f"{tests[0]}.mp4"))
    print(
        f"\ncheckpoint: {escape(str(best))}\n"
        "This model knows only the generated clips: a red, green, blue or yellow square moving left,\n"
        "right, up or down. A caption of any other clip is still a sentence about a coloured square, and\n"
        "means nothing; for real video train on MSR-VTT or MSVD (docs/video-captioning.md,\n"
        "docs/datasets.md).\n"
        f"caption clips with it: vision2seq caption --checkpoint {escape(str(best))} {example}"
    )
    return metrics


def _names(caption: str, words: list[str]) -> str | None:
    """The one word of ``words`` the caption names, or None (none or several)."""
    found = [w for w in words if w in caption.rstrip(".").split()]
    return found[0] if len(found) == 1 else None
