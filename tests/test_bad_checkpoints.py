"""Bad checkpoint files, through the Python API (``load_checkpoint``, ``Captioner``/``VideoClassifier``
``.from_checkpoint``) and the CLI (``caption``, ``classify``, ``evaluate``): one line naming the file and
the reason, exit 1, never a traceback. (Files crafted to run code: see ``test_untrusted.py``.)"""

from __future__ import annotations

import random
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import tiny_models
import torch
from bad_inputs import make_good
from tiny_models import TinyRun, assert_one_error, run_cli
from video_fixtures import moving_square_frames, write_video

from vision2seq.engine import checkpoint
from vision2seq.engine.checkpoint import FORMAT_VERSION, CheckpointError, load_checkpoint, save_checkpoint
from vision2seq.inference.captioner import Captioner
from vision2seq.inference.classifier import VideoClassifier

# Shared fixtures (see tiny_models): the tiny checkpoints, and torch on one thread for these tests.
tiny_captioner = tiny_models.tiny_captioner
tiny_video = tiny_models.tiny_video
torch_one_thread = tiny_models.torch_one_thread


def _patched(source: Path, path: Path, edit: Callable[[dict], None]) -> Path:
    """``source`` loaded, edited in place by ``edit`` and written with a plain ``torch.save``."""
    payload = load_checkpoint(source)
    edit(payload)
    torch.save(payload, path)
    return path


def _newer(source: Path, path: Path) -> Path:
    """A checkpoint written by this version's ``save_checkpoint``, then marked as a later format."""
    save_checkpoint(path, {k: v for k, v in load_checkpoint(source).items() if k != "format_version"})
    return _patched(path, path, lambda p: p.update(format_version=FORMAT_VERSION + 1))


def _other_zip(folder: Path, source: Path) -> Path:
    path = folder / "archive.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "not weights")
    return path


def _poisoned(folder: Path, source: Path, value: float) -> Path:
    """The checkpoint with one weight tensor's first value replaced by ``value`` (NaN or inf)."""

    def edit(payload: dict) -> None:
        name = next(k for k, v in payload["model"].items() if v.is_floating_point() and v.numel())
        payload["model"][name].view(-1)[0] = value

    return _patched(source, folder / "poisoned.pt", edit)


def _zip_bomb(folder: Path, source: Path) -> Path:
    """A 20 kB zip declaring 20 MB inside (deflated zeros), in the layout of a torch checkpoint."""
    path = folder / "bomb.pt"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("bomb/data.pkl", b"\x80\x02}q\x00.")
        archive.writestr("bomb/data/0", bytes(20_000_000))
    return path


def _folder(folder: Path, source: Path) -> Path:
    (folder / "run").mkdir()
    return folder / "run"


def _extras(folder: Path, source: Path, **changes: object) -> Path:
    return _patched(source, folder / "extras.pt", lambda p: p["extras"].update(changes))


# name -> (writer(folder, a checkpoint of the right task) -> path, reason in the message)
CASES: dict[str, tuple[Callable[[Path, Path], Path], str]] = {
    "missing": (lambda d, src: d / "missing.pt", "missing.pt: checkpoint not found"),
    "empty": (lambda d, src: (d / "empty.pt", (d / "empty.pt").write_bytes(b""))[0], "empty file"),
    "truncated": (
        lambda d, src: (
            d / "cut.pt",
            (d / "cut.pt").write_bytes(src.read_bytes()[: src.stat().st_size // 2]),
        )[0],
        "cut.pt: not a readable checkpoint (truncated or corrupt?)",
    ),
    "text_file": (
        lambda d, src: (d / "notes.pt", (d / "notes.pt").write_text("model weights are elsewhere\n"))[0],
        "notes.pt: not a readable checkpoint",
    ),
    "random_bytes": (
        lambda d, src: (d / "noise.pt", (d / "noise.pt").write_bytes(random.Random(0).randbytes(4096)))[0],
        "noise.pt: not a readable checkpoint (truncated or corrupt?)",
    ),
    "zip_of_something_else": (_other_zip, "archive.pt: not a readable checkpoint"),
    "plain_state_dict": (
        lambda d, src: _patched(
            src, d / "state_dict.pt", lambda p: [p.pop(k) for k in list(p) if k != "model"]
        ),
        "state_dict.pt: not a vision2seq checkpoint (no format_version/model entries",
    ),
    "newer_format_version": (
        lambda d, src: _newer(src, d / "future.pt"),
        f"future.pt: checkpoint format version {FORMAT_VERSION + 1} is newer than this vision2seq supports "
        f"({FORMAT_VERSION}); upgrade vision2seq",
    ),
    "folder": (_folder, "run: is a folder, not a checkpoint file"),
    "nan_weights": (
        lambda d, src: _poisoned(d, src, float("nan")),
        "poisoned.pt: weight '",
    ),
    "inf_weights": (
        lambda d, src: _poisoned(d, src, float("inf")),
        "holds NaN or infinite values (a diverged or damaged model); use an earlier checkpoint",
    ),
    "zip_bomb": (_zip_bomb, "bomb.pt: refused: the "),
    "vocab_not_a_list": (
        lambda d, src: _extras(d, src, vocab="<pad> <bos> <eos> <unk> a dog"),
        "malformed",  # check_task or the vocabulary check, whichever runs first
    ),
    "vocab_without_specials": (
        lambda d, src: _extras(d, src, vocab=["a", "dog"]),
        "extras.pt: malformed vocabulary in the checkpoint: a vocabulary must start with <pad> <bos>",
    ),
    "vocab_word_twice": (
        lambda d, src: _extras(d, src, vocab=["<pad>", "<bos>", "<eos>", "<unk>", "dog", "dog"]),
        "malformed vocabulary in the checkpoint: a vocabulary cannot list a word twice ('dog')",
    ),
    "vocab_not_words": (
        lambda d, src: _extras(d, src, vocab=["<pad>", "<bos>", "<eos>", "<unk>", 7]),
        "malformed vocabulary in the checkpoint: a vocabulary holds non-empty words, not 7",
    ),
    "labels_twice": (
        lambda d, src: _extras(d, src, labels=["left", "left"]),
        "extras.pt: malformed class labels in the checkpoint (a name listed twice)",
    ),
    "damaged_layout": (
        lambda d, src: _patched(src, d / "no_extras.pt", lambda p: p.pop("extras")),
        "no_extras.pt: damaged",
    ),
}

SOURCE = {"caption": "tiny_captioner", "classify": "tiny_video", "evaluate": "tiny_captioner"}
OWN_EXTRAS = {case: "caption" for case in CASES if case.startswith("vocab_")} | {"labels_twice": "video"}
"""Damaged ``extras`` entries matter to the task that reads them (a captioner has no class labels)."""
API_CASES = [(c, k) for c in sorted(CASES) for k in ("caption", "video") if OWN_EXTRAS.get(c, k) == k]
KIND = {"caption": "caption", "classify": "video", "evaluate": "caption"}
CLI_CASES = [(c, m) for c in sorted(CASES) for m in SOURCE if OWN_EXTRAS.get(c, KIND[m]) == KIND[m]]


def _inputs(command: str, folder: Path) -> list[Path]:
    if command == "caption":
        return [make_good(folder)]
    if command == "classify":
        return [write_video(folder / "clip.avi", moving_square_frames(4, 32, 32))]
    return []


@pytest.mark.parametrize(("case", "kind"), API_CASES)
def test_bad_checkpoint_api(case: str, kind: str, request, tmp_path: Path) -> None:
    tiny: TinyRun = request.getfixturevalue("tiny_captioner" if kind == "caption" else "tiny_video")
    make, reason = CASES[case]
    path = make(tmp_path, tiny.checkpoint)
    load = Captioner.from_checkpoint if kind == "caption" else VideoClassifier.from_checkpoint
    with pytest.raises(CheckpointError) as caught:
        load(path, device="cpu")
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and reason in message and "\n" not in message


@pytest.mark.parametrize(("case", "command"), CLI_CASES)
def test_bad_checkpoint_cli(case: str, command: str, request, tmp_path: Path, capsys) -> None:
    tiny: TinyRun = request.getfixturevalue(SOURCE[command])
    make, reason = CASES[case]
    path = make(tmp_path, tiny.checkpoint)
    code, out, err = run_cli(capsys, command, "--checkpoint", path, *_inputs(command, tmp_path))
    assert code == 1 and out == ""
    assert_one_error(err, command, str(path), reason)


def test_load_checkpoint_refuses_newer_format(tiny_captioner, tmp_path: Path) -> None:
    path = _newer(tiny_captioner.checkpoint, tmp_path / "future.pt")
    assert torch.load(path, weights_only=True)["format_version"] == FORMAT_VERSION + 1
    with pytest.raises(
        CheckpointError, match=r"format version 2 is newer than this vision2seq supports \(1\)"
    ):
        load_checkpoint(path)
    for bad in ("1", True, 0):
        _patched(tiny_captioner.checkpoint, tmp_path / "odd.pt", lambda p, v=bad: p.update(format_version=v))
        with pytest.raises(CheckpointError, match="invalid checkpoint format version"):
            load_checkpoint(tmp_path / "odd.pt")


# --- a checkpoint of the other task ---------------------------------------------------------------


def test_captioning_checkpoint_given_to_classify(tiny_captioner, tmp_path, capsys) -> None:
    with pytest.raises(CheckpointError) as caught:
        VideoClassifier.from_checkpoint(tiny_captioner.checkpoint)
    assert "this is a 'captioning' checkpoint, but a 'video_classification' checkpoint is needed" in str(
        caught.value
    )
    code, out, err = run_cli(
        capsys, "classify", "--checkpoint", tiny_captioner.checkpoint, *_inputs("classify", tmp_path)
    )
    assert code == 1 and out == ""
    assert_one_error(
        err,
        "classify",
        f"{tiny_captioner.checkpoint}: this is a 'captioning' checkpoint, but a 'video_classification' "
        "checkpoint is needed (use `vision2seq caption` with it)",
    )


def test_video_checkpoint_given_to_caption(tiny_video, tmp_path, capsys) -> None:
    with pytest.raises(
        CheckpointError, match="this is a 'video_classification' checkpoint, but a 'captioning'"
    ):
        Captioner.from_checkpoint(tiny_video.checkpoint)
    code, out, err = run_cli(
        capsys, "caption", "--checkpoint", tiny_video.checkpoint, *_inputs("caption", tmp_path)
    )
    assert code == 1 and out == ""
    assert_one_error(
        err,
        "caption",
        f"{tiny_video.checkpoint}: this is a 'video_classification' checkpoint, but a 'captioning' or "
        "'video_captioning' checkpoint is needed (use `vision2seq classify` with it)",
    )


# --- weights that do not fit the stored config ------------------------------------------------------


def _mismatched(tiny: TinyRun, path: Path) -> Path:
    def edit(payload: dict) -> None:
        section = payload["config"]["model"]
        (section.get("decoder") or section["temporal"])["hidden_dim"] *= 2

    return _patched(tiny.checkpoint, path, edit)


@pytest.mark.parametrize("command", ["caption", "classify"])
def test_weights_not_matching_the_config(command: str, request, tmp_path: Path, capsys) -> None:
    tiny: TinyRun = request.getfixturevalue(SOURCE[command])
    path = _mismatched(tiny, tmp_path / "mismatched.pt")
    code, _, err = run_cli(capsys, command, "--checkpoint", path, *_inputs(command, tmp_path))
    assert code == 1
    assert_one_error(err, command, str(path))


def test_nan_message_names_the_tensor(tiny_captioner, tmp_path: Path) -> None:
    path = _poisoned(tmp_path, tiny_captioner.checkpoint, float("nan"))
    name = next(k for k, v in torch.load(path, weights_only=True)["model"].items() if v.isnan().any())
    with pytest.raises(CheckpointError, match=f"weight '{name}' holds NaN"):
        load_checkpoint(path)


def test_zip_bomb_is_refused_from_the_zip_directory(tiny_captioner, tmp_path: Path, monkeypatch) -> None:
    path = _zip_bomb(tmp_path, tiny_captioner.checkpoint)

    def never(*args, **kwargs):
        raise AssertionError("torch.load was called on a zip bomb")

    monkeypatch.setattr(torch, "load", never)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    size = path.stat().st_size
    assert str(caught.value) == (
        f"{path}: refused: the {size:,}-byte file declares 20,000,006 bytes inside (a zip bomb?); "
        "torch.save writes checkpoints uncompressed"
    )


@pytest.mark.parametrize("command", ["caption", "evaluate"])
def test_unreadable_checkpoint_is_permission_denied(command, tiny_captioner, tmp_path, capsys, monkeypatch):
    # Permission bits do not stop root, so the refusal of the OS is simulated for this one file.
    path = tmp_path / "locked.pt"
    path.write_bytes(tiny_captioner.checkpoint.read_bytes())
    real_open = open

    def guarded(file, *args, **kwargs):
        if Path(file) == path:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(checkpoint, "open", guarded, raising=False)
    code, out, err = run_cli(capsys, command, "--checkpoint", path, *_inputs(command, tmp_path))
    assert code == 1 and out == ""
    assert_one_error(err, command, f"{path}: cannot read checkpoint: permission denied")


def test_every_task_class_names_its_config_schema():
    """``TASKS`` and the config's schema registry list the same tasks, each with the same config class."""
    from vision2seq.config import SCHEMAS
    from vision2seq.tasks import TASKS

    assert set(TASKS) == set(SCHEMAS)
    for name, task in TASKS.items():
        assert task.name == name and task.schema is SCHEMAS[name]
