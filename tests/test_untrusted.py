"""Untrusted files never run code, and only the documented formats are read.

* Checkpoints crafted to run code when unpickled are refused with a clear message by ``load_checkpoint``,
  the ``Captioner``/``VideoClassifier`` loaders and every command that reads a checkpoint, and the
  marker file their code would create never appears.
* Configs are parsed as plain YAML data: Python tags are refused with a ``ConfigError``.
* Images are read only in the documented formats, videos only from the documented containers and local
  files (no playlists that would open other files or URLs).
* The package source holds no ``eval``/``exec``, unsafe YAML or pickle loading, and every ``torch.load``
  passes ``weights_only=True``.
"""

from __future__ import annotations

import ast
import os
import pathlib
import pickle
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import tiny_models
import torch
from bad_inputs import make_good
from tiny_models import assert_one_error, assert_reported, error_lines, run_cli, run_module
from video_fixtures import moving_square_frames, read_video_frames, write_video

import vision2seq
from vision2seq.config import ConfigError, load_config
from vision2seq.data.images import ImageReadError, load_image
from vision2seq.data.video.reader import VideoDecodeError
from vision2seq.engine.checkpoint import CheckpointError, load_checkpoint
from vision2seq.inference.captioner import Captioner
from vision2seq.inference.classifier import VideoClassifier

PACKAGE = Path(vision2seq.__file__).resolve().parent

# Shared fixtures (see tiny_models): the tiny checkpoints, and torch on one thread for these tests.
tiny_captioner = tiny_models.tiny_captioner
tiny_video = tiny_models.tiny_video
torch_one_thread = tiny_models.torch_one_thread


class TouchOnLoad:
    """Unpickling this calls ``Path.touch(marker)``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


class ShellOnLoad:
    """Unpickling this runs ``touch marker`` in a shell."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _torch_save(folder: Path, marker: Path) -> Path:
    """A real torch zip archive whose pickle holds an object that runs code."""
    path = folder / "crafted_torch.pt"
    torch.save({"format_version": 1, "task": "captioning", "model": {"w": TouchOnLoad(marker)}}, path)
    return path


def _zip_with_raw_pickle(folder: Path, marker: Path) -> Path:
    """A torch zip archive whose ``data.pkl`` was replaced by a hand-made pickle calling ``os.system``."""
    base, path = folder / "base.pt", folder / "crafted_zip.pt"
    torch.save({"format_version": 1, "model": {}}, base)
    payload = pickle.dumps({"format_version": 1, "model": ShellOnLoad(marker)}, protocol=2)
    with zipfile.ZipFile(base) as source, zipfile.ZipFile(path, "w") as out:
        for info in source.infolist():
            out.writestr(info, payload if info.filename.endswith("/data.pkl") else source.read(info))
    base.unlink()
    return path


def _raw_pickle(folder: Path, marker: Path) -> Path:
    """A plain pickle file (no zip), as ``pickle.dump`` writes: torch's legacy format."""
    path = folder / "crafted_pickle.pt"
    path.write_bytes(pickle.dumps({"format_version": 1, "model": ShellOnLoad(marker)}))
    return path


# name -> (writer(folder, marker) -> path, reason in the message)
CRAFTED: dict[str, tuple[Callable[[Path, Path], Path], str]] = {
    "torch_save_reduce": (_torch_save, "refused to load"),
    "zip_with_os_system_pickle": (_zip_with_raw_pickle, "it asks to import and call 'posix.system'"),
    "raw_pickle": (_raw_pickle, "not a torch.save zip archive"),
}


def _inputs(command: str, folder: Path) -> list[Path]:
    if command == "caption":
        return [make_good(folder)]
    if command == "classify":
        return [write_video(folder / "clip.avi", moving_square_frames(4, 32, 32))]
    return []


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_crafted_checkpoint_is_refused_by_the_api(case: str, tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    make, reason = CRAFTED[case]
    path = make(tmp_path, marker)
    for load in (load_checkpoint, Captioner.from_checkpoint, VideoClassifier.from_checkpoint):
        with pytest.raises(CheckpointError) as caught:
            load(path)
        message = str(caught.value)
        assert message.startswith(f"{path}: ") and reason in message and "\n" not in message
        assert "weights_only" not in message and "\x1b" not in message  # no advice to load it unsafely
    assert not marker.exists()


@pytest.mark.parametrize("command", ["caption", "classify", "evaluate"])
@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_crafted_checkpoint_is_refused_by_the_cli(case: str, command: str, tmp_path: Path, capsys) -> None:
    marker = tmp_path / "MARKER"
    make, reason = CRAFTED[case]
    path = make(tmp_path, marker)
    code, out, err = run_cli(capsys, command, "--checkpoint", path, *_inputs(command, tmp_path))
    assert code == 1 and out == ""
    assert_one_error(err, command, str(path), reason)
    assert not marker.exists()


def test_crafted_last_checkpoint_is_refused_on_resume(tiny_captioner, tmp_path, capsys) -> None:
    marker = tmp_path / "MARKER"
    run = tmp_path / "run"
    run.mkdir()
    _zip_with_raw_pickle(tmp_path, marker).rename(run / "last.pt")
    code, _, err = run_cli(capsys, "train", tiny_captioner.config, f"output_dir={run}", "--resume", "--quiet")
    assert code == 1
    assert_one_error(err, "train", str(run / "last.pt"), "refused to load")
    assert not marker.exists()


def test_crafted_checkpoint_python_dash_m(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    path = _torch_save(tmp_path, marker)
    proc = run_module("evaluate", "--checkpoint", path)
    assert proc.returncode == 1 and proc.stdout == ""
    assert_one_error(proc.stderr, "evaluate", str(path), "refused to load")
    assert not marker.exists()


def test_crafted_encoder_weights_file_is_refused(tiny_captioner, tmp_path, capsys) -> None:
    marker = tmp_path / "MARKER"
    weights = tmp_path / "weights.pt"
    torch.save({"conv1.weight": TouchOnLoad(marker)}, weights)
    code, _, err = run_cli(
        capsys,
        "train",
        tiny_captioner.config,
        f"model.encoder.weights={weights}",
        f"output_dir={tmp_path / 'run'}",
        "--quiet",
    )
    assert code == 1
    assert_one_error(err, "train", str(weights))
    assert not marker.exists()


def test_crafted_encoder_weights_message_gives_no_unsafe_advice(tiny_captioner, tmp_path, capsys) -> None:
    weights = tmp_path / "weights.pt"
    torch.save({"conv1.weight": TouchOnLoad(tmp_path / "MARKER")}, weights)
    _, _, err = run_cli(
        capsys, "train", tiny_captioner.config, f"model.encoder.weights={weights}", f"output_dir={tmp_path}/r"
    )
    assert "weights_only" not in err and "\x1b" not in err and "it asks to import and call" in err


# --- configs --------------------------------------------------------------------------------------

PYTHON_TAGS = [
    '!!python/object/apply:os.system ["touch {marker}"]',
    '!!python/object/apply:pathlib.Path.touch ["{marker}"]',
    "!!python/name:os.system",
    '!!python/object/new:subprocess.Popen [["touch", "{marker}"]]',
]


@pytest.mark.parametrize("tag", PYTHON_TAGS)
def test_yaml_python_tags_are_refused(tag: str, tiny_captioner, tmp_path, capsys) -> None:
    marker = tmp_path / "MARKER"
    config = tmp_path / "evil.yaml"
    config.write_text(f"task: captioning\noutput_dir: {tag.format(marker=marker)}\n")
    with pytest.raises(ConfigError, match=r"evil\.yaml: invalid YAML \(could not determine a constructor"):
        load_config(config)
    code, out, err = run_cli(capsys, "train", config)
    assert code == 2 and out == ""
    assert_one_error(err, "train", "evil.yaml: invalid YAML", "python/")
    # The same tag in a command-line override is never constructed either.
    override = f"train.epochs={tag.format(marker=marker)}"
    code, _, err = run_cli(capsys, "train", tiny_captioner.config, override)
    assert code == 2
    assert_one_error(err, "train", "key 'train.epochs' must be int, got '!!python/")
    code, _, err = run_cli(capsys, "evaluate", "--checkpoint", tiny_captioner.checkpoint, override)
    assert code == 2
    assert_one_error(err, "evaluate", "key 'train.epochs' must be int")
    assert not marker.exists()


def test_yaml_alias_bomb_is_refused_quickly(tmp_path: Path, capsys) -> None:
    """Nine levels of nine aliases ("billion laughs", 10⁹ values) are counted, never expanded or printed,
    wherever they are used: under a list key, a scalar key, an unknown key, or a command-line override."""
    lines = ["task: captioning", "x0: &x0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"x{i}: &x{i} [{', '.join([f'*x{i - 1}'] * 9)}]" for i in range(1, 10)]
    config = tmp_path / "laughs.yaml"
    refused = "laughs.yaml: expands to more than 100,000 values (an alias bomb?)"
    for tail in ("data: {train_splits: *x9}", "train: {epochs: *x9}", ""):
        config.write_text("\n".join([*lines, tail]) + "\n")
        start = time.perf_counter()
        with pytest.raises(ConfigError, match=r"expands to more than 100,000 values") as caught:
            load_config(config)
        assert time.perf_counter() - start < 2.0
        assert len(str(caught.value)) < 200
        code, _, err = run_cli(capsys, "train", config)
        assert code == 2
        assert_one_error(err, "train", str(config), refused)
    with pytest.raises(ConfigError, match=r"override 'train.epochs': expands to more than"):
        load_config(None, ["train.epochs=" + _alias_bomb()])


def _alias_bomb() -> str:
    """A one-line YAML flow value with 10⁹ values once its aliases are expanded."""
    text = "&x0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"
    for i in range(1, 10):
        text = f"[{text}, &x{i} [{', '.join([f'*x{i - 1}'] * 9)}]]"
    return text


# --- only the documented image and video formats --------------------------------------------------

EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n(touch MARKER) run\nshowpage\n%%EOF\n"


@pytest.mark.parametrize("fmt", ["ICO", "PCX", "TGA", "SGI", "EPS"])
def test_images_in_undocumented_formats_are_not_read(fmt: str, tmp_path: Path) -> None:
    path = tmp_path / f"picture_{fmt.lower()}.jpg"
    if fmt == "EPS":  # Pillow would hand EPS to Ghostscript
        path.write_bytes(EPS)
    else:
        from PIL import Image

        Image.new("RGB", (16, 16), (200, 10, 10)).save(path, format=fmt)
    with pytest.raises(
        ImageReadError, match=r"not an image file \(unrecognised format; supported: JPEG, PNG"
    ):
        load_image(path)


def _playlist(folder: Path, name: str, target: Path) -> Path:
    """An HLS playlist that FFmpeg's ``hls`` demuxer would follow to ``target`` (any file or URL)."""
    path = folder / name
    path.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\n{target}\n#EXT-X-ENDLIST\n")
    return path


def _concat_script(folder: Path, name: str, target: Path) -> Path:
    """An FFmpeg concat script that would splice ``target`` in."""
    path = folder / name
    path.write_text(f"ffconcat version 1.0\nfile '{target}'\n")
    return path


@pytest.mark.parametrize(
    ("make", "name"),
    [(_playlist, "playlist.m3u8"), (_playlist, "playlist.mp4"), (_concat_script, "concat.avi")],
)
def test_video_playlists_are_not_followed(make, name: str, tiny_video, tmp_path, capsys) -> None:
    target = write_video(tmp_path / "elsewhere.avi", moving_square_frames(4, 32, 32))
    path = make(tmp_path, name, target)
    with pytest.raises(VideoDecodeError, match="not a video file"):
        read_video_frames(path)
    code, out, err = run_cli(
        capsys, "classify", "--checkpoint", tiny_video.checkpoint, path, "--workers", "0"
    )
    assert code == 1 and out == ""
    assert_reported(err, name, "not a video file")
    assert len(error_lines(err)) == 1


# --- the package source -------------------------------------------------------------------------


def _calls(tree: ast.AST) -> list[tuple[str, ast.Call]]:
    """``(dotted name, node)`` for every call whose callee is a plain or dotted name."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            parts, func = [], node.func
            while isinstance(func, ast.Attribute):
                parts.append(func.attr)
                func = func.value
            if isinstance(func, ast.Name):
                found.append((".".join([func.id, *reversed(parts)]), node))
    return found


def _keyword(node: ast.Call, name: str) -> object:
    for keyword in node.keywords:
        if keyword.arg == name and isinstance(keyword.value, ast.Constant):
            return keyword.value.value
    return None


def test_package_source_never_evaluates_or_unpickles_untrusted_data() -> None:
    sources = sorted(PACKAGE.rglob("*.py"))
    assert len(sources) > 20
    problems = []
    for source in sources:
        text = source.read_text(encoding="utf-8")
        where = source.relative_to(PACKAGE.parent)
        for needle in ("yaml.load(", "yaml.unsafe_load", "yaml.full_load", "pickle.load", "Unpickler("):
            if needle in text:
                problems.append(f"{where}: contains {needle!r}")
        for name, node in _calls(ast.parse(text, filename=str(source))):
            line = f"{where}:{node.lineno}"
            if name in ("eval", "exec", "compile", "__import__", "os.system", "os.popen"):
                problems.append(f"{line}: calls {name}()")
            # The only processes started are the reference Java tools (METEOR, SPICE), with a fixed argv.
            java_tool = where.parts[-2:] in (("evaluation", "meteor.py"), ("evaluation", "spice.py"))
            if name.split(".")[0] in ("marshal", "shelve", "dill") or (
                name.split(".")[0] == "subprocess" and not java_tool
            ):
                problems.append(f"{line}: calls {name}()")
            if name.split(".")[0] == "subprocess" and _keyword(node, "shell") is True:
                problems.append(f"{line}: runs a shell")
            if name == "yaml.load" or name.startswith("pickle."):
                problems.append(f"{line}: calls {name}()")
            if name == "torch.load" and _keyword(node, "weights_only") is not True:
                problems.append(f"{line}: torch.load without weights_only=True")
            if name in ("np.load", "numpy.load") and _keyword(node, "allow_pickle") is True:
                problems.append(f"{line}: np.load with allow_pickle=True")
    assert problems == []
    # The scan sees what it is meant to see.
    assert [name for name, _ in _calls(ast.parse("eval('1'); model.eval(); torch.load(p)"))] == [
        "eval",
        "model.eval",
        "torch.load",
    ]
