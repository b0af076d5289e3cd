"""Bad and unusual image files, through the Python API (``load_image``, ``Captioner``) and the CLI
(``caption``, ``evaluate``): bad files are one line each naming the file and the reason, never a
traceback; the good files of the same batch are still captioned."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tiny_models
from bad_inputs import BAD_IMAGES, ODD_IMAGES, make_good, picture, png_declaring
from tiny_models import assert_one_error, assert_reported, error_lines, run_cli, run_module

from vision2seq.data.images import MAX_PIXELS, ImageReadError, load_image
from vision2seq.inference.captioner import Captioner

# Shared fixtures (see tiny_models): the tiny checkpoints, and torch on one thread for these tests.
tiny_captioner = tiny_models.tiny_captioner
torch_one_thread = tiny_models.torch_one_thread


@pytest.fixture(scope="module")
def captioner(tiny_captioner) -> Captioner:
    return Captioner.from_checkpoint(tiny_captioner.checkpoint, device="cpu")


@pytest.fixture(scope="module")
def odd_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("odd_images")
    return {name: make(folder) for name, (make, _) in ODD_IMAGES.items()}


# --- load_image ---------------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(BAD_IMAGES))
def test_load_image_refuses_bad_file_with_one_line(case: str, tmp_path: Path) -> None:
    make, reason = BAD_IMAGES[case]
    path = make(tmp_path)
    with pytest.raises(ImageReadError) as caught:
        load_image(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and reason in message and "\n" not in message


@pytest.mark.parametrize("case", sorted(ODD_IMAGES))
def test_load_image_decodes_odd_file_to_rgb(case: str, odd_files: dict[str, Path]) -> None:
    image = load_image(odd_files[case])
    assert image.mode == "RGB"
    assert image.size == ODD_IMAGES[case][1]


def test_exif_orientation_is_applied(odd_files: dict[str, Path]) -> None:
    pixels = np.asarray(load_image(odd_files["exif_rotated"])).astype(int)
    h, w = pixels.shape[:2]
    assert (w, h) == (32, 48)  # stored 48x32, shown rotated a quarter turn
    # The red block stored top-left is shown top-right after the 90-degree clockwise rotation.
    top_right, top_left = pixels[2, w - 3], pixels[2, 2]
    assert top_right[0] > 200 and top_right[1] < 80 and top_right[2] < 80, top_right
    assert not (top_left[0] > 200 and top_left[1] < 80), top_left


@pytest.mark.parametrize(
    "case", ["png16", "tiff_float01", "tiff_float255", "tiff_int32_8bit", "tiff_int32_16bit"]
)
def test_deep_greyscale_ramps_are_scaled_not_clipped(case: str, odd_files: dict[str, Path]) -> None:
    """A 0..max ramp in 16-bit, float32 or int32 greyscale decodes to a 0..255 ramp (not black or white)."""
    pixels = np.asarray(load_image(odd_files[case])).astype(int)
    assert (pixels == pixels[..., :1]).all()  # grey
    row = pixels[0, :, 0]
    assert row[0] <= 2 and row[-1] >= 253 and (np.diff(row) >= 0).all(), row
    assert abs(row[len(row) // 2] - 128) < 8, row


def test_odd_modes_keep_their_content(odd_files: dict[str, Path]) -> None:
    deep = np.asarray(load_image(odd_files["png16"])).astype(int)[..., 0]
    assert deep[:, 0].max() < 10 and deep[:, -1].min() > 245  # the 16-bit ramp is scaled, not clipped
    assert 100 < deep[0, deep.shape[1] // 2] < 156
    corner = np.asarray(load_image(odd_files["cmyk_jpeg"])).astype(int)[2, 2]
    assert corner[0] > 180 and corner[1] < 90 and corner[2] < 90, corner  # still red
    rgba = np.asarray(load_image(odd_files["rgba"])).astype(int)
    opaque = np.asarray(picture()).astype(int)
    assert (rgba >= opaque - 2).all() and rgba.mean() > opaque.mean() + 30  # half-transparent on white
    assert load_image(odd_files["animated_gif"]).getpixel((5, 5)) == (255, 0, 0)  # first frame
    assert load_image(odd_files["one_pixel"]).getpixel((0, 0)) == (0, 128, 255)
    assert np.asarray(load_image(odd_files["grayscale"])).std(axis=2).max() == 0


def test_decompression_bomb_is_refused_before_allocating(tmp_path: Path) -> None:
    """Files claiming huge sizes are refused from their header, in a process that could not even hold
    the decoded pixels (address space capped at 1 GiB)."""
    for name, (w, h) in {"huge.png": (100_000, 100_000), "just_over.png": (15_000, 12_000)}.items():
        (tmp_path / name).write_bytes(png_declaring(w, h))
    assert MAX_PIXELS < 15_000 * 12_000
    script = textwrap.dedent(
        f"""
        import resource, sys, time
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
        from vision2seq.data.images import ImageReadError, load_image
        for name in ("huge.png", "just_over.png"):
            start = time.perf_counter()
            try:
                load_image({str(tmp_path)!r} + "/" + name)
            except ImageReadError as exc:
                print(f"{{time.perf_counter() - start:.3f}} {{exc}}")
            else:
                sys.exit(name + " was decoded")
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 2
    for line, name in zip(lines, ("huge.png", "just_over.png"), strict=True):
        seconds, message = line.split(" ", 1)
        assert float(seconds) < 0.5
        assert name in message and f"image too large (over {MAX_PIXELS} pixels), refused" in message


# --- Captioner ------------------------------------------------------------------------------------


def test_captioner_captions_odd_files(captioner: Captioner, odd_files: dict[str, Path]) -> None:
    names = sorted(odd_files)
    captions = captioner.caption([odd_files[n] for n in names])
    assert len(captions) == len(names) and all(isinstance(c, str) for c in captions)
    results = list(captioner.caption_files([odd_files[n] for n in names], num_workers=0))
    assert [r.error for r in results] == [None] * len(names)
    assert [r.caption for r in results] == captions


@pytest.mark.parametrize("case", sorted(BAD_IMAGES))
def test_captioner_reports_bad_file_and_captions_the_rest(
    case: str, captioner: Captioner, tmp_path: Path
) -> None:
    make, reason = BAD_IMAGES[case]
    paths = [make_good(tmp_path, "first.png"), make(tmp_path), make_good(tmp_path, "last.png", seed=1)]
    results = list(captioner.caption_files(paths, num_workers=0))
    assert [r.file for r in results] == [str(p) for p in paths]
    assert results[0].caption is not None and results[2].caption is not None
    assert results[1].caption is None and str(paths[1]) in results[1].error and reason in results[1].error
    with pytest.raises(ImageReadError, match=paths[1].name):
        captioner.caption(paths)


# --- CLI: caption ---------------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(BAD_IMAGES))
def test_cli_caption_reports_bad_file_and_captions_the_rest(
    case: str,
    tiny_captioner,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    make, reason = BAD_IMAGES[case]
    good = [make_good(tmp_path, "first.png"), make_good(tmp_path, "last.png", seed=1)]
    bad = make(tmp_path)
    code, out, err = run_cli(
        capsys, "caption", "--checkpoint", tiny_captioner.checkpoint, good[0], bad, good[1], "--workers", "0"
    )
    assert code == 1
    assert [line.split("\t")[0] for line in out.splitlines()] == [str(p) for p in good]
    assert len(error_lines(err)) == 1
    assert assert_reported(err, bad.name, reason).startswith(str(bad))


def test_cli_caption_odd_files(tiny_captioner, odd_files, capsys) -> None:
    code, out, err = run_cli(
        capsys, "caption", "--checkpoint", tiny_captioner.checkpoint, "--json", *odd_files.values()
    )
    assert code == 0 and error_lines(err) == []
    rows = json.loads(out)
    assert sorted(r["file"] for r in rows) == sorted(str(p) for p in odd_files.values())
    assert all(isinstance(r["caption"], str) for r in rows)


def test_cli_caption_folder_in_worker_processes(tiny_captioner, tmp_path, capsys) -> None:
    """Decoding errors raised in DataLoader workers come back as the same one-line reports."""
    good = [make_good(tmp_path, f"good{i}.png", seed=i) for i in range(3)]
    bad = {make(tmp_path): reason for name, (make, reason) in BAD_IMAGES.items() if name != "missing"}
    code, out, err = run_cli(
        capsys,
        "caption",
        "--checkpoint",
        tiny_captioner.checkpoint,
        tmp_path,
        "--workers",
        "2",
        "--batch-size",
        "2",
    )
    assert code == 1
    assert sorted(line.split("\t")[0] for line in out.splitlines()) == sorted(str(p) for p in good)
    assert len(error_lines(err)) == len(bad)
    for path, reason in bad.items():
        assert_reported(err, path.name, reason)


def test_cli_caption_missing_checkpoint_or_pattern(tiny_captioner, tmp_path, capsys) -> None:
    code, _, err = run_cli(capsys, "caption", "--checkpoint", tmp_path / "nope.pt", tmp_path)
    assert code == 1
    assert_one_error(err, "caption", "nope.pt: checkpoint not found")
    good = make_good(tmp_path)
    code, out, err = run_cli(
        capsys, "caption", "--checkpoint", tiny_captioner.checkpoint, good, str(tmp_path / "*.jpeg")
    )
    assert code == 1 and out.startswith(str(good))
    assert_reported(err, "*.jpeg", "pattern matched no")


def test_python_dash_m_caption_exit_status(tiny_captioner, tmp_path: Path) -> None:
    good = make_good(tmp_path)
    bad = BAD_IMAGES["truncated_jpeg"][0](tmp_path)
    proc = run_module("caption", "--checkpoint", tiny_captioner.checkpoint, good, bad, "--workers", "0")
    assert proc.returncode == 1
    assert proc.stdout.startswith(f"{good}\t")
    assert len(error_lines(proc.stderr)) == 1 and assert_reported(proc.stderr, bad.name, "truncated")


# --- CLI: evaluate and train on a dataset with bad images ---------------------------------------


def _split_with_bad_images(tiny, folder: Path, split: str) -> tuple[Path, dict[Path, str]]:
    """A Karpathy file whose ``split`` holds the tiny dataset's images plus every bad image."""
    images = folder / "images"
    shutil.copytree(tiny.data, images)
    dataset = json.loads(tiny.annotations.read_text())
    bad = {}
    for name, (make, reason) in sorted(BAD_IMAGES.items()):
        if name == "missing":
            continue  # a missing file is an annotation problem (tested in test_bad_annotations)
        path = make(images)
        bad[path] = reason
        dataset["images"].append({"filename": path.name, "split": split, "sentences": [{"raw": "a shape"}]})
    annotations = folder / "dataset.json"
    annotations.write_text(json.dumps(dataset))
    return annotations, bad


def _run_with_bad_images(command: str, tiny, folder: Path, capsys) -> tuple[int, str, str, dict[Path, str]]:
    """``evaluate`` (bad images in the test split) or ``train`` (in the train split), with a fresh cache."""
    annotations, bad = _split_with_bad_images(tiny, folder, "test" if command == "evaluate" else "train")
    data = [f"data.annotations={annotations}", f"data.images={folder / 'images'}"]
    data.append(f"data.cache_dir={folder / 'cache'}")
    if command == "evaluate":
        argv = ["evaluate", "--checkpoint", tiny.checkpoint, "--json", *data]
    else:
        argv = ["train", tiny.config, *data, f"output_dir={folder / 'run'}"]
    return (*run_cli(capsys, *argv, "--quiet"), bad)


@pytest.mark.parametrize("command", ["evaluate", "train"])
def test_cli_reports_bad_images_and_uses_the_rest(command: str, tiny_captioner, tmp_path, capsys) -> None:
    _, out, err, bad = _run_with_bad_images(command, tiny_captioner, tmp_path, capsys)
    if command == "evaluate":
        assert set(json.loads(out)) >= {"bleu_1", "bleu_4", "cider"}
    else:
        assert out.startswith("trained 1 epochs") and (tmp_path / "run" / "best.pt").is_file()
    reports = [line for line in error_lines(err) if not line.startswith("epoch 1/1: ")]  # train's summary
    assert len(reports) == len(bad)
    for path, reason in bad.items():
        assert_reported(err, path.name, reason)


@pytest.mark.parametrize("command", ["evaluate", "train"])
def test_cli_exit_status_after_skipping_bad_images(command: str, tiny_captioner, tmp_path, capsys) -> None:
    code, _, _, _ = _run_with_bad_images(command, tiny_captioner, tmp_path, capsys)
    assert code == 1


def test_cli_evaluate_without_cache_reports_bad_images_in_workers(tiny_captioner, tmp_path, capsys) -> None:
    annotations, bad = _split_with_bad_images(tiny_captioner, tmp_path, "test")
    _, out, err = run_cli(
        capsys,
        "evaluate",
        "--checkpoint",
        tiny_captioner.checkpoint,
        "--json",
        "--quiet",
        f"data.annotations={annotations}",
        f"data.images={tmp_path / 'images'}",
        "data.cache_features=false",
        "train.num_workers=2",
        "train.batch_size=2",
    )
    for path, reason in bad.items():
        assert_reported(err, path.name, reason)
    assert set(json.loads(out)) >= {"bleu_1", "bleu_4"}
