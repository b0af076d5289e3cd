"""Every code block in README.md and docs/*.md runs as written, page by page (README.md first, then
docs/ in name order), in page order, in one working folder shared by all pages.

The folder holds what the examples name (``photo.jpg``, ``holidays/``, ``clip.avi``, ...), made from the
demo's images and generated clips; the quick start's ``vision2seq demo`` trains the model that
``runs/a/best.pt`` later names. Absolute placeholder paths (``/data/...``) map onto the demo's data and a
generated UCF101 layout. ``train``/``demo`` commands get extra overrides that make them small (random
weights, 32 px, tiny layers, one epoch); the commands themselves run unchanged. Commands that install
packages, need GPUs or other hosts (``pip``, ``torchrun``, ``jupyter``, the test runners) are checked
rather than run: the extras they name exist, the arguments after ``-m vision2seq`` parse, the files they
name are there. A block with a command this file does not know fails the test: teach it the command.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
import shutil
import sys
from pathlib import Path

import pytest
import tomllib
from PIL import Image
from video_caption_fixtures import motion_clips, write_clips, write_msrvtt, write_msvd
from video_fixtures import make_ucf101_layout

from vision2seq.__main__ import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
# README first: its quick start trains the demo whose checkpoint later examples name.
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
COCO = ROOT.parent / "shared" / "data" / "coco_caption_eval"
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)

# Small, offline versions of the shipped configs (appended to train/demo commands only).
FAST_CAPTIONING = [
    "model.encoder.weights=null",
    "model.encoder.image_size=32",
    "model.decoder.embed_dim=8",
    "model.decoder.hidden_dim=16",
    "model.decoder.attention_dim=8",
    "data.min_word_freq=1",
    "data.max_val_images=8",
    "train.batch_size=128",
    "train.num_workers=0",
    "train.early_stopping_patience=0",
]
FAST_VIDEO = [
    "model.encoder.weights=null",
    "model.encoder.image_size=32",
    "model.temporal.hidden_dim=8",
    "data.num_frames=4",
    "data.cache_frames=4",
    "data.test_clips=1",
    "train.epochs=1",
    "train.batch_size=4",
    "train.num_workers=0",
    "train.warmup_steps=0",
]
FAST_VIDEO_CAPTIONING = [
    "model.encoder.name=resnet18",  # a random-init ResNet-152 overflows the float16 cache
    "model.encoder.weights=null",
    "model.encoder.image_size=32",
    "model.temporal.hidden_dim=8",
    "model.decoder.embed_dim=8",
    "model.decoder.hidden_dim=16",
    "model.decoder.attention_dim=8",
    "data.num_frames=4",
    "data.cache_frames=4",
    "data.min_word_freq=1",
    "train.batch_size=4",
    "train.num_workers=0",
    "train.early_stopping_patience=0",
]
# The video demos' own configs are small already; fewer epochs and units keep the test fast.
FAST_DEMO = {
    "captioning": [*FAST_CAPTIONING[:-1], "train.epochs=1"],
    "video": ["model.temporal.hidden_dim=8", "train.epochs=1"],
    "video-captioning": ["model.temporal.hidden_dim=8", "model.decoder.hidden_dim=16", "train.epochs=1"],
}
MSVD_SPLIT = "data.msvd_split=[4,2,2]"  # the generated MSVD set has 8 clips, not 1,970


def page_id(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


def readme_blocks(page: Path = README) -> list[tuple[str, str]]:
    """The code blocks of a page (``text`` blocks are pictures, such as the package layout, not code)."""
    return [(lang, code) for lang, code in BLOCK.findall(page.read_text(encoding="utf-8")) if lang != "text"]


def shell_commands(code: str) -> list[str]:
    """The commands of a bash block: comments dropped, continuations joined, ``&&`` chains split."""
    text = re.sub(r"\\\n\s*", " ", code)
    commands = []
    for line in text.splitlines():
        line = line.split(" #")[0].strip() if not line.lstrip().startswith("#") else ""
        commands += [part.strip() for part in line.split("&&") if part.strip()]
    return commands


def pyproject_extras() -> dict[str, list[str]]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding every file the README's examples name (except what its own commands create)."""
    ws = tmp_path_factory.mktemp("readme")
    (ws / "configs").symlink_to(ROOT / "configs")  # the README's commands run in a clone of the repository
    import random

    from vision2seq.demo import draw_shape_image

    rng = random.Random(0)
    (ws / "holidays").mkdir()
    (ws / "shots").mkdir()
    for name in ("photo.jpg", "dog.png", "holidays/beach.jpg", "holidays/hill.jpg", "shots/a.png"):
        draw_shape_image(rng)[0].save(ws / name)
    videos, _ = make_ucf101_layout(ws / "ucf", groups=3, clips_per_group=1, test_groups=(1,), num_frames=4)
    clip = sorted(videos.rglob("*.avi"))[0]
    shutil.copy(clip, ws / "clip.avi")
    (ws / "more_clips").mkdir()
    shutil.copy(sorted(videos.rglob("*.avi"))[-1], ws / "more_clips" / "other.avi")
    shutil.copy(clip, ws / "phone.mp4")  # "*.mp4": the container is probed, not trusted by its name
    (ws / "frames_folder").mkdir()
    for i in range(4):
        Image.new("RGB", (32, 32), (40 * i, 80, 120)).save(ws / "frames_folder" / f"frame{i + 1:06d}.jpg")
    # Video captioning: tiny MSR-VTT (the official pair) and MSVD sets of generated moving squares.
    clips = motion_clips({"train": [(8, 2)], "validate": [(10, 4)], "test": [(8, 12)]}, ("red", "blue"))
    write_clips(ws / "msrvtt" / "videos", clips, frame_folders=False, num_frames=4)
    write_msrvtt(ws / "msrvtt", clips, pair=True)
    msvd = [f"clip{i}_1_5" for i in range(8)]
    write_msvd(
        ws / "msvd", msvd, {name: [f"a square moves {i}", "a thing moves"] for i, name in enumerate(msvd)}
    )
    (ws / "msvd" / "YouTubeClips").mkdir()
    for name in msvd:
        shutil.copy(clip, ws / "msvd" / "YouTubeClips" / f"{name}.avi")
    (ws / "clips").mkdir()
    shutil.copy(clip, ws / "clips" / "a.avi")
    shutil.copy(clip, ws / "clip.mp4")
    if COCO.is_dir():  # score-captions examples: the COCO evaluation example in the README's file names
        shutil.copy(COCO / "en_captions_val2014_fakecap_results.json", ws / "results.json")
        shutil.copy(COCO / "en_captions_val2014.json", ws / "captions_val2014.json")
        coco = json.loads((COCO / "en_captions_val2014.json").read_text())
        captions: dict[int, list[dict[str, str]]] = {}
        for a in coco["annotations"]:
            captions.setdefault(a["image_id"], []).append({"raw": a["caption"]})
        karpathy = [
            {
                "filename": im["file_name"],
                "cocoid": im["id"],
                "split": "test",
                "sentences": captions[im["id"]],
            }
            for im in coco["images"]
        ]
        (ws / "dataset_coco.json").write_text(json.dumps({"images": karpathy}))
    return ws


def placeholders(ws: Path) -> dict[str, str]:
    return {
        "/data/Flicker8k_Dataset": str(ws / "demo_run" / "data" / "images"),
        "/data/dataset_flickr8k.json": str(ws / "demo_run" / "data" / "dataset_shapes.json"),
        "/data/UCF-101": str(ws / "ucf" / "UCF-101"),
        "/data/ucfTrainTestlist": str(ws / "ucf" / "ucfTrainTestlist"),
        "/data/msrvtt": str(ws / "msrvtt"),
        "/data/msvd": str(ws / "msvd"),
    }


def run_vision2seq(argv: list[str], ws: Path) -> None:
    command = argv[0]
    if command == "demo":
        argv += FAST_DEMO[argv[argv.index("--task") + 1] if "--task" in argv else "captioning"]
    elif command == "train":
        config = (ROOT / argv[1]).read_text()
        if "task: video_captioning" in config:
            argv += [*FAST_VIDEO_CAPTIONING, *([MSVD_SPLIT] if "msvd" in argv[1] else [])]
        else:
            argv += FAST_VIDEO if "video_classification" in config else FAST_CAPTIONING
        argv += [] if any(a.startswith("train.epochs=") for a in argv) else ["train.epochs=1"]
    if command == "score-captions" and not COCO.is_dir():
        pytest.skip("../shared/data/coco_caption_eval not present (score-captions examples)")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv + (["--quiet"] if command in ("train", "demo", "evaluate") else []))
    assert code == 0, f"vision2seq {shlex.join(argv)} exited {code}:\n{err.getvalue()}"


def check_other(command: str, words: list[str]) -> None:
    """Commands that are checked, not run (installs, other hosts, test runners)."""
    program = words[0]
    if program in ("python3", "python") and words[1:3] == ["-m", "venv"]:
        return
    if program == "." and words[1].endswith("/bin/activate"):
        return
    if program == "pip" and words[1] == "install":
        extras = pyproject_extras()
        for word in words[2:]:
            match = re.fullmatch(r"\.\[([\w,]+)\]", word)
            if match:
                assert all(e in extras for e in match.group(1).split(",")), f"unknown extra in: {command}"
        if "--index-url" in words:
            assert words[words.index("--index-url") + 1] == "https://download.pytorch.org/whl/cpu"
        return
    if program in ("python", "python3") and words[1:3] == ["-m", "pytest"]:
        return  # the suite this test belongs to
    if program == "python" and words[1] == "benchmarks/run.py":
        assert (ROOT / words[1]).is_file()
        return
    if program == "ruff":
        return
    if program == "bash":
        assert (ROOT / words[1]).is_file(), command
        return
    if program == "jupyter":
        assert words[1] == "lab" and (ROOT / words[2]).is_dir()
        assert any("jupyterlab" in dep for dep in pyproject_extras()["notebooks"])
        return
    if program == "torchrun":
        argv = words[words.index("-m") + 2 :]
        args = build_parser().parse_args(argv)  # the vision2seq arguments parse
        assert (ROOT / args.config).is_file(), command
        return
    pytest.fail(f"README command not run or checked by tests/test_readme.py: {command}")


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_documented_code_block_runs_as_written(page, workspace, monkeypatch):
    ws = workspace
    monkeypatch.chdir(ws)
    monkeypatch.setenv("VISION2SEQ_CACHE", str(ws / "cache"))
    monkeypatch.setattr(sys, "argv", ["vision2seq"])
    blocks = readme_blocks(page)
    assert {lang for lang, _ in blocks} <= {"bash", "python"}, f"{page_id(page)}: bash or python blocks"
    ran = {"vision2seq": 0, "python": 0, "checked": 0}
    for lang, code in blocks:
        if lang == "python":
            with contextlib.redirect_stdout(io.StringIO()):
                exec(compile(code, f"{page_id(page)} block", "exec"), {"__name__": "__readme__"})
            ran["python"] += 1
            continue
        for command in shell_commands(code):
            for placeholder, real in placeholders(ws).items():
                # Only where a path starts (`demo_video_run/data/UCF-101/...` is not `/data/UCF-101`).
                command = re.sub(rf"(?<![\w.-]){re.escape(placeholder)}", lambda _, r=real: r, command)
            words = shlex.split(command)
            if words[0] == "vision2seq":
                run_vision2seq(words[1:], ws)
                ran["vision2seq"] += 1
            else:
                check_other(command, words)
                ran["checked"] += 1
    commands = sum(len(shell_commands(code)) for lang, code in blocks if lang == "bash")
    assert ran["vision2seq"] + ran["checked"] == commands, ran
    assert ran["python"] == sum(lang == "python" for lang, _ in blocks), ran


@pytest.mark.slow
def test_demo_checkpoint_is_evaluated_from_another_folder(workspace, tmp_path, monkeypatch, capsys):
    """The demo stores absolute data paths: its checkpoint works wherever the user stands."""
    best = workspace / "demo_run" / "run" / "best.pt"
    if not best.is_file():
        pytest.skip("runs after the README test, which trains the demo")
    from vision2seq.engine.checkpoint import load_checkpoint

    data = load_checkpoint(best)["config"]["data"]
    assert Path(data["annotations"]).is_absolute() and Path(data["images"]).is_absolute()
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(best), "--json", "--quiet"]) == 0
    assert "bleu_4" in json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_documented_commands_are_all_known(page):
    """Fast guard: every command in a bash block of README.md or docs/ is one the slow test runs or checks."""
    known = {"vision2seq", "python3", "python", ".", "pip", "ruff", "bash", "jupyter", "torchrun"}
    for lang, code in readme_blocks(page):
        assert lang in ("bash", "python"), f"{page_id(page)} block in {lang or 'no language'}"
        if lang == "bash":
            for command in shell_commands(code):
                assert shlex.split(command)[0] in known, command
        else:
            compile(code, f"{page_id(page)} block", "exec")


def test_the_blocks_are_found():
    """The block pattern still matches the pages: the commands the slow test runs are there to run."""
    blocks = [block for page in PAGES for block in readme_blocks(page)]
    commands = [c for lang, code in blocks if lang == "bash" for c in shell_commands(code)]
    assert sum(lang == "python" for lang, _ in blocks) >= 4
    assert sum(shlex.split(c)[0] == "vision2seq" for c in commands) >= 20
    assert any(c == "vision2seq demo" for c in shell_commands(readme_blocks(README)[0][1]))


def heading_anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    text = BLOCK.sub("", page.read_text(encoding="utf-8"))  # a "# comment" in a code block is no heading
    headings = re.findall(r"^#+\s+(.+?)\s*$", text, re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_links_between_pages_resolve(page):
    """Every relative link of README.md and docs/ names a file that exists, and a heading of it."""
    text = BLOCK.sub("", page.read_text(encoding="utf-8"))
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page_id(page)}: link to missing {target}"
        if anchor and linked.suffix == ".md":
            assert anchor in heading_anchors(linked), f"{page_id(page)}: no heading for #{anchor} in {path}"
