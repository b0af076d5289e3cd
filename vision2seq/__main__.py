"""The ``vision2seq`` command: subcommands mapping to plain functions.

Exit status: 0 success; 1 some input could not be processed (each reported as one line on stderr; the
other inputs are still processed);
2 usage error (bad arguments, unknown config key, wrong value type); 3 broken installation (a package
fails to import, e.g. a torchvision built for another torch: one line says what to reinstall); 130
interrupted.

Messages: a fatal error is the one stderr line ``vision2seq CMD: error: ...``; a skipped input is the
one line ``path: reason``. Names are printed with control characters escaped (``vision2seq.errors.escape``);
JSON output keeps them exact.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import re
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from vision2seq import __version__
from vision2seq.errors import UsageError, UserError, escape, report, skipped_count
from vision2seq.files import WriteError, reason

EXIT_OK, EXIT_INPUT, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_ENVIRONMENT = 3  # a required package fails to import (vision2seq.environment)


def _announce(args: argparse.Namespace) -> bool:
    """Whether to print the thread line: like the progress bars, on a terminal only (logs and the one-line
    error contract stay as they are), never with ``--quiet``, and from one process of a torchrun job."""
    return not getattr(args, "quiet", False) and sys.stderr.isatty() and os.environ.get("RANK", "0") == "0"


def cmd_train(args: argparse.Namespace) -> int:
    from vision2seq.config import load_config
    from vision2seq.resources import configure_threads, worker_count
    from vision2seq.train import train

    config = load_config(args.config, args.overrides)
    args.output_dir = config.output_dir  # for the advice to resume when interrupted
    threads = args.threads if args.threads is not None else config.train.threads
    configure_threads(threads, worker_count(config.train.num_workers), announce=_announce(args))
    result = train(config, resume=args.resume, progress=not args.quiet)
    best = (
        f"{result.best_metric:.4f} (epoch {result.best_epoch})" if result.best_metric is not None else "n/a"
    )
    print(
        f"trained {result.epochs_run} epochs; best {result.monitor}: {best}; "
        f"checkpoints in {escape(str(result.output_dir))}"
    )
    return EXIT_OK


def cmd_caption(args: argparse.Namespace) -> int:
    from vision2seq.inference.video_captioner import find_inputs, load_captioner
    from vision2seq.resources import configure_threads, worker_count

    workers = worker_count(args.workers)
    configure_threads(args.threads, workers, announce=_announce(args))
    captioner = load_captioner(args.checkpoint, device=args.device)  # image or video, by the checkpoint
    paths, missing = find_inputs(captioner, args.paths)
    for line in missing:
        report(line)
    generation = {"beam_size": args.beam_size, "max_len": args.max_len}
    progress = False if args.quiet else None
    rows = []
    for result in captioner.caption_files(
        paths, batch_size=args.batch_size, num_workers=workers, progress=progress, **generation
    ):
        if result.error:
            report(result.error)
            continue
        if args.json:
            rows.append({"file": result.file, "caption": result.caption})
        else:
            print(f"{escape(result.file)}\t{escape(result.caption)}", flush=True)  # model output: escaped
    if args.json:
        print(json.dumps(rows, indent=2))
    return EXIT_OK


def cmd_classify(args: argparse.Namespace) -> int:
    from vision2seq.inference.classifier import VideoClassifier, find_videos
    from vision2seq.resources import configure_threads, worker_count

    workers = 0 if args.stream else worker_count(args.workers)
    configure_threads(args.threads, workers, announce=_announce(args))
    classifier = VideoClassifier.from_checkpoint(args.checkpoint, device=args.device)
    paths, missing = find_videos(args.paths)
    for line in missing:
        report(line)
    top_k = args.top_k or (5 if args.json else 1)
    if args.stream:
        for path in paths:
            try:
                for update in classifier.stream_file(path, frame_step=args.frame_step, top_k=top_k):
                    print(_stream_line(str(path), update, args.json), flush=True)
            except UserError as exc:
                report(str(exc))
        return EXIT_OK
    rows = []
    progress = False if args.quiet else None
    for result in classifier.classify(
        paths, top_k=top_k, batch_size=args.batch_size, num_workers=workers, progress=progress
    ):
        if result.error:
            report(result.error)
        elif args.json:
            rows.append({"file": result.file, "labels": _labels_json(result.labels)})
        else:
            for name, score in result.labels:
                print(f"{escape(result.file)}\t{escape(name)}\t{score:.4f}", flush=True)
    if args.json:
        print(json.dumps(rows, indent=2))
    return EXIT_OK


def _labels_json(labels: Sequence[tuple[str, float]]) -> list[dict[str, object]]:
    return [{"label": name, "score": score} for name, score in labels]


def _stream_line(path: str, update, as_json: bool) -> str:
    """One ``--stream`` output line: tab-separated text, or a JSON object (JSON lines)."""
    if as_json:
        row = {"file": path, "time": round(update.time_s, 6), "frame": update.frame}
        return json.dumps({**row, "labels": _labels_json(update.labels)})
    label, score = update.labels[0]
    return f"{escape(path)}\t{update.time_s:.3f}s\tframe {update.frame}\t{escape(label)}\t{score:.4f}"


def cmd_evaluate(args: argparse.Namespace) -> int:
    from vision2seq.evaluate import evaluate_checkpoint
    from vision2seq.resources import configure_threads, worker_count

    configure_threads(args.threads, worker_count(2), announce=_announce(args))
    metrics = evaluate_checkpoint(
        args.checkpoint,
        split=args.split,
        overrides=args.overrides,
        device=args.device,
        progress=not args.quiet,
    )
    if "confusion_matrix" in metrics:
        from vision2seq.viz import save_confusion_matrix

        stem = Path(args.checkpoint).parent / f"confusion_{args.split}"
        try:
            for saved in save_confusion_matrix(metrics, stem):
                print(f"wrote {escape(str(saved))}", file=sys.stderr)
        except (OSError, WriteError) as exc:  # a read-only folder must not cost the metrics just computed
            why = reason(exc) if isinstance(exc, OSError) else str(exc).rsplit(": ", 1)[-1]
            print(
                f"vision2seq evaluate: warning: cannot write {escape(str(stem))}.csv ({why}); "
                "the metrics below are complete",
                file=sys.stderr,
            )
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        for key, value in metrics.items():
            if isinstance(value, float):
                print(f"{key}\t{value:.4f}")
    return EXIT_OK


def _caption_metrics(text: str) -> tuple[str, ...]:
    from vision2seq.evaluation.caption_metrics import resolve_metrics

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
        print(f"{escape(str(image))}\t" + "\t".join(f"{k}={v:.4f}" for k, v in row.items()))
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from vision2seq.config import load_config
    from vision2seq.demo import demo_config_path, run_demo
    from vision2seq.resources import configure_threads, worker_count
    from vision2seq.video_demo import run_video_captioning_demo, run_video_demo, video_demo_config_path

    if args.task == "captioning":
        path, run = demo_config_path(), run_demo
    else:
        path = video_demo_config_path(args.task)
        run = run_video_demo if args.task == "video" else run_video_captioning_demo
    config = load_config(path, args.overrides)
    threads = args.threads if args.threads is not None else config.train.threads
    configure_threads(threads, worker_count(config.train.num_workers), announce=_announce(args))
    output_dir = args.output_dir or DEMO_FOLDERS[args.task]
    run(Path(output_dir), args.overrides, progress=not args.quiet)
    return EXIT_OK


DEMO_FOLDERS = {
    "captioning": "demo_run",
    "video": "demo_video_run",
    "video-captioning": "demo_video_captioning_run",
}


# --- command-line values, checked when parsed ------------------------------------------------------


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``minimum``; the refusal names the range."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


_OVERRIDE = re.compile(r"[A-Za-z_][\w.]*=.*", re.S)
_DEVICE = re.compile(r"(auto|cpu|cuda|mps|xpu)(:\d+)?")


def device_name(text: str) -> str:
    """An argparse type: ``auto``, ``cpu``, ``cuda``, ``cuda:N``, ...; whether it exists is checked later."""
    if not _DEVICE.fullmatch(text) or text.startswith(("auto:", "cpu:")):
        raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda or cuda:N, got {text!r}")
    return text


class Parser(argparse.ArgumentParser):
    """argparse, with errors as the one line ``vision2seq CMD: error: ...`` (exit 2) like every other."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {escape(message)} (see {self.prog} --help)\n")


def _add_threads(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threads",
        type=int_at_least(1),
        default=None,
        help="CPU threads for the model (default: the CPUs left after loader workers and other load)",
    )


def _add_workers(p: argparse.ArgumentParser, media: str) -> None:
    p.add_argument(
        "--workers",
        type=int_at_least(0),
        default=2,
        help=f"{media}-decoding processes (default: 2, at most one per CPU)",
    )


def _add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device", type=device_name, default="auto", help="auto (a GPU when there is one), cpu, cuda, cuda:1"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="vision2seq",
        description="Caption images and classify video clips with CNN encoders and LSTM decoders: train, "
        "evaluate, and run trained models on your files. Start with: vision2seq demo",
        epilog="vision2seq COMMAND --help describes each command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def overrides(example: str) -> dict:
        return {"nargs": "*", "default": [], "metavar": "KEY=VALUE", "help": example}

    p = sub.add_parser(
        "train",
        help="train a model from a YAML config",
        description="Train a captioner or video classifier; writes best.pt, last.pt and metrics.csv.",
    )
    p.add_argument("config", help="experiment YAML file (see configs/)")
    p.add_argument("overrides", **overrides("config values to change, e.g. train.epochs=3 output_dir=runs/a"))
    p.add_argument("--resume", action="store_true", help="continue the run in output_dir from its last.pt")
    p.add_argument("--quiet", action="store_true", help="no progress bars or thread line")
    _add_threads(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "caption",
        help="caption images or video clips: files, folders or glob patterns",
        description="Print a caption for every image (or clip, with a video-captioning checkpoint); "
        "unreadable files are reported on stderr and skipped.",
    )
    p.add_argument("--checkpoint", required=True, help="an image or video captioning checkpoint (best.pt)")
    p.add_argument(
        "paths", nargs="+", metavar="PATH", help="images or clips (files, frame folders), folders, or globs"
    )
    p.add_argument(
        "--beam-size", type=int_at_least(1), default=None, help="beam width (1 = greedy; default: config)"
    )
    p.add_argument("--max-len", type=int_at_least(1), default=None, help="maximum caption length in words")
    p.add_argument("--batch-size", type=int_at_least(1), default=32, help="images per batch (default: 32)")
    _add_workers(p, "image")
    _add_device(p)
    _add_threads(p)
    p.add_argument("--json", action="store_true", help='print a JSON list of {"file", "caption"}')
    p.add_argument("--quiet", action="store_true", help="no progress bar or thread line")
    p.set_defaults(func=cmd_caption)

    p = sub.add_parser(
        "classify",
        help="classify video files, frame folders, folders of videos, globs",
        description="Print the top labels of every video; unreadable videos are reported and skipped.",
    )
    p.add_argument("--checkpoint", required=True, help="a video-classification checkpoint (best.pt)")
    p.add_argument("paths", nargs="+", metavar="PATH", help="videos, frame folders, folders, or globs")
    p.add_argument(
        "--top-k", type=int_at_least(1), default=None, help="labels per video (default: 1 plain, 5 JSON)"
    )
    p.add_argument(
        "--stream",
        action="store_true",
        help="print the running prediction frame by frame (JSON lines with --json)",
    )
    p.add_argument(
        "--frame-step", type=int_at_least(1), default=1, help="with --stream: feed every N-th frame"
    )
    p.add_argument("--batch-size", type=int_at_least(1), default=8, help="videos per batch (default: 8)")
    _add_workers(p, "video")
    _add_device(p)
    _add_threads(p)
    p.add_argument(
        "--json",
        action="store_true",
        help='print a JSON list of {"file", "labels"} (with --stream: one object a line)',
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar or thread line")
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser(
        "evaluate",
        help="score a checkpoint on a dataset split",
        description="Score a checkpoint on a split of the dataset named in its config.",
    )
    p.add_argument("--checkpoint", required=True, help="a checkpoint (best.pt)")
    p.add_argument("--split", default="test", help="dataset split to score: val or test (default: test)")
    p.add_argument(
        "overrides",
        **overrides(
            "changes to the checkpoint's config, e.g. data.images=/data/images generation.beam_size=5"
        ),
    )
    _add_device(p)
    _add_threads(p)
    p.add_argument("--json", action="store_true", help="print the metrics as a JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress bars or thread line")
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

    p = sub.add_parser(
        "demo",
        help="generate a small dataset, train a model on it, show what it does (nothing is downloaded)",
        description="Generate a small dataset, train a model on it (nothing is downloaded), then print "
        "sample outputs and its test scores against a baseline. --task captioning (default): 1,400 "
        "images of coloured shapes and an attention captioner. --task video: 144 clips of a square "
        "moving left, right, up or down and an LSTM clip classifier. --task video-captioning: 128 "
        "clips of a coloured square moving, captioned with its colour and direction.",
    )
    p.add_argument(
        "--task",
        choices=tuple(DEMO_FOLDERS),
        default="captioning",
        help="what to demonstrate (default: captioning)",
    )
    p.add_argument(
        "--output-dir",
        default=None,
        help="folder for the generated data, feature cache and checkpoints (default: demo_run, "
        "demo_video_run or demo_video_captioning_run in the current folder; the full path is printed)",
    )
    p.add_argument(
        "overrides",
        **overrides(
            "changes to the demo's config (configs/demo.yaml, demo_video.yaml or "
            "demo_video_captioning.yaml), e.g. model.temporal.hidden_dim=128; data and output paths "
            "come from --output-dir"
        ),
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars or thread line")
    _add_threads(p)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        # KEY=VALUE overrides after an option (`train cfg.yaml --resume train.epochs=6`) are overrides too.
        if extra and hasattr(args, "overrides") and all(_OVERRIDE.fullmatch(word) for word in extra):
            args.overrides = [*args.overrides, *extra]
        elif extra:
            where = f"vision2seq {args.command}"
            parser.exit(
                EXIT_USAGE,
                f"{where}: error: unrecognized arguments: {escape(' '.join(extra))} (see {where} --help)\n",
            )
    except SystemExit as exc:  # --help, --version, or a usage error already printed as one line
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    # Before any work (and before importing the config reader, which needs pyyaml): a broken install
    # is one line saying what to reinstall, not a traceback from deep inside a command.
    from vision2seq.environment import environment_problem, required_for

    problem = environment_problem(required_for(args.command))
    if problem:
        print(f"vision2seq {args.command}: error: {escape(problem)}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    from vision2seq.config import ConfigError

    skipped_before = skipped_count()
    try:
        if getattr(args, "device", "auto") != "auto":
            from vision2seq.engine.distributed import resolve_device

            resolve_device(args.device)  # a device this machine lacks is refused before any work
        code = args.func(args)
        sys.stdout.flush()  # a full disk under `> file` is reported here, as one line, not at exit
        # Inputs that were reported and skipped (bad files among good ones) make the run exit 1.
        return EXIT_INPUT if code == EXIT_OK and skipped_count() > skipped_before else code
    except (ConfigError, UsageError) as exc:
        print(f"vision2seq {args.command}: error: {escape(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except UserError as exc:
        print(f"vision2seq {args.command}: error: {escape(str(exc))}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print(f"vision2seq {args.command}: interrupted{_resume_hint(args)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `vision2seq caption ... | head`: the reader has gone, so stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as exc:
        if exc.errno not in WRITE_ERRNOS:
            raise
        # Output that cannot be written (stdout redirected to a full disk): one line, and stdout is
        # detached so that the interpreter's own flush at exit does not fail again with a traceback.
        where = escape(str(exc.filename)) if exc.filename else "standard output"
        print(f"vision2seq {args.command}: error: cannot write {where}: {reason(exc)}", file=sys.stderr)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_INPUT


WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG, errno.EROFS)
"""Failed writes reported as one line (exit 1) wherever they happen."""


def _resume_hint(args: argparse.Namespace) -> str:
    """``; continue with ...`` when an interrupted ``train`` left a ``last.pt`` to resume from."""
    out = getattr(args, "output_dir", None)
    if args.command != "train" or not out:
        return ""
    if not (Path(out) / "last.pt").is_file():
        return "; nothing was saved yet (last.pt is written every train.checkpoint_minutes and each epoch)"
    words = ["vision2seq", "train", args.config, *args.overrides, "--resume"]
    return f"; continue with: {' '.join(shlex.quote(w) for w in words)}"


if __name__ == "__main__":
    sys.exit(main())
