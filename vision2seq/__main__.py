"""The ``vision2seq`` command: subcommands mapping to plain functions.

Exit status: 0 success; 1 some input could not be processed (each reported as one line on stderr; the
other inputs are still processed);
2 usage error (bad arguments, unknown config key, wrong value type); 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from vision2seq.config import ConfigError
from vision2seq.errors import UserError, report, skipped_count

EXIT_OK, EXIT_INPUT, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def cmd_train(args: argparse.Namespace) -> int:
    from vision2seq.config import load_config
    from vision2seq.train import train

    config = load_config(args.config, args.overrides)
    result = train(config, resume=args.resume, progress=not args.quiet)
    best = (
        f"{result.best_metric:.4f} (epoch {result.best_epoch})" if result.best_metric is not None else "n/a"
    )
    print(
        f"trained {result.epochs_run} epochs; best {result.monitor}: {best}; "
        f"checkpoints in {result.output_dir}"
    )
    return EXIT_OK


def cmd_caption(args: argparse.Namespace) -> int:
    from vision2seq.captioner import Captioner
    from vision2seq.data.images import find_images

    captioner = Captioner.from_checkpoint(args.checkpoint, device=args.device)
    paths, missing = find_images(args.paths)
    for line in missing:
        report(line)
    generation = {"beam_size": args.beam_size, "max_len": args.max_len}
    rows = []
    for result in captioner.caption_files(
        paths, batch_size=args.batch_size, num_workers=args.workers, **generation
    ):
        if result.error:
            report(result.error)
            continue
        if args.json:
            rows.append({"file": result.file, "caption": result.caption})
        else:
            print(f"{result.file}\t{result.caption}", flush=True)
    if args.json:
        print(json.dumps(rows, indent=2))
    return EXIT_OK


def cmd_classify(args: argparse.Namespace) -> int:
    from vision2seq.classifier import VideoClassifier, find_videos

    classifier = VideoClassifier.from_checkpoint(args.checkpoint, device=args.device)
    paths, missing = find_videos(args.paths)
    for line in missing:
        report(line)
    top_k = args.top_k or (5 if args.json else 1)
    if args.stream:
        for path in paths:
            try:
                for update in classifier.stream_file(path, frame_step=args.frame_step, top_k=top_k):
                    label, score = update.labels[0]
                    print(
                        f"{path}\t{update.time_s:.3f}s\tframe {update.frame}\t{label}\t{score:.4f}",
                        flush=True,
                    )
            except UserError as exc:
                report(str(exc))
        return EXIT_OK
    rows = []
    for result in classifier.classify(
        paths, top_k=top_k, batch_size=args.batch_size, num_workers=args.workers
    ):
        if result.error:
            report(result.error)
        elif args.json:
            rows.append({"file": result.file, "labels": [{"label": n, "score": s} for n, s in result.labels]})
        else:
            for name, score in result.labels:
                print(f"{result.file}\t{name}\t{score:.4f}", flush=True)
    if args.json:
        print(json.dumps(rows, indent=2))
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace) -> int:
    from vision2seq.evaluate import evaluate_checkpoint

    metrics = evaluate_checkpoint(
        args.checkpoint,
        split=args.split,
        overrides=args.overrides,
        device=args.device,
        progress=not args.quiet,
    )
    if "confusion_matrix" in metrics:
        from vision2seq.viz import save_confusion_matrix

        out = Path(args.checkpoint).parent
        for saved in save_confusion_matrix(metrics, out / f"confusion_{args.split}"):
            print(f"wrote {saved}", file=sys.stderr)
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        for key, value in metrics.items():
            if isinstance(value, float):
                print(f"{key}\t{value:.4f}")
    return EXIT_OK


def _caption_metrics(text: str) -> tuple[str, ...]:
    from vision2seq.evaluation.captions import resolve_metrics

    try:
        return resolve_metrics(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_score_captions(args: argparse.Namespace) -> int:
    from vision2seq.evaluation.coco_files import score_caption_files

    scores = score_caption_files(
        args.predictions, args.references, args.split, per_image=args.per_image, metrics=args.metrics
    )
    if args.json:
        print(json.dumps(scores, indent=2))
        return EXIT_OK
    for key, value in scores.items():
        if key != "per_image":
            print(f"{key}\t{value:.4f}")
    for image, row in scores.get("per_image", {}).items():
        print(f"{image}\t" + "\t".join(f"{k}={v:.4f}" for k, v in row.items()))
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from vision2seq.demo import run_demo

    run_demo(Path(args.output_dir), args.overrides, progress=not args.quiet)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vision2seq", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    overrides = {
        "nargs": "*",
        "default": [],
        "metavar": "KEY=VALUE",
        "help": "config overrides, e.g. train.epochs=3 output_dir=runs/a",
    }

    p = sub.add_parser("train", help="train a model from a YAML config")
    p.add_argument("config", help="experiment YAML file (see configs/)")
    p.add_argument("overrides", **overrides)
    p.add_argument("--resume", action="store_true", help="continue from output_dir/last.pt")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("caption", help="caption image files, folders or glob patterns")
    p.add_argument("--checkpoint", required=True, help="a captioning checkpoint (best.pt)")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders, or glob patterns")
    p.add_argument("--beam-size", type=int, default=None, help="beam width (1 = greedy; default: config)")
    p.add_argument("--max-len", type=int, default=None, help="maximum caption length in tokens")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=2, help="image-decoding worker processes")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument("--json", action="store_true", help='print a JSON list of {"file", "caption"}')
    p.set_defaults(func=cmd_caption)

    p = sub.add_parser("classify", help="classify video files, frame folders, folders of videos, globs")
    p.add_argument("--checkpoint", required=True, help="a video-classification checkpoint (best.pt)")
    p.add_argument("paths", nargs="+", metavar="PATH", help="videos, frame folders, folders, or globs")
    p.add_argument("--top-k", type=int, default=None, help="labels per video (default: 1 plain, 5 JSON)")
    p.add_argument("--stream", action="store_true", help="print the running prediction frame by frame")
    p.add_argument("--frame-step", type=int, default=1, help="with --stream: feed every N-th frame")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--workers", type=int, default=2, help="video-decoding worker processes")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help='print a JSON list of {"file", "labels"}')
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser("evaluate", help="score a checkpoint on a dataset split")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--split", default="test", help="dataset split to score (default: test)")
    p.add_argument("overrides", **overrides)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="print the metrics as a JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("score-captions", help="score a COCO results file against reference captions")
    p.add_argument("--predictions", required=True, help='COCO results JSON: [{"image_id", "caption"}, ...]')
    p.add_argument("--references", required=True, help="COCO captions annotations or a Karpathy split JSON")
    p.add_argument("--split", default="test", help="Karpathy references only: the split to use")
    p.add_argument("--per-image", action="store_true", help="also print every image's scores")
    p.add_argument("--json", action="store_true", help="print the scores as a JSON object")
    p.add_argument(
        "--metrics",
        type=_caption_metrics,
        default=None,
        help="comma-separated, from bleu,meteor,rouge_l,cider,spice (default: bleu,rouge_l,cider; "
        "meteor and spice need Java and pycocoevalcap; METEOR takes about 20-40 s to start)",
    )
    p.set_defaults(func=cmd_score_captions)

    p = sub.add_parser("demo", help="generate a small dataset, train a captioner on it, show captions")
    p.add_argument("--output-dir", default="demo_run", help="where data and checkpoints go")
    p.add_argument("overrides", **overrides)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    skipped_before = skipped_count()
    try:
        code = args.func(args)
        # Inputs that were reported and skipped (bad files among good ones) make the run exit 1.
        return EXIT_INPUT if code == EXIT_OK and skipped_count() > skipped_before else code
    except ConfigError as exc:
        print(f"vision2seq {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except UserError as exc:
        print(f"vision2seq {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print(f"vision2seq {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `vision2seq caption ... | head`: the reader has gone, so stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
