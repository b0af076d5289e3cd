"""The command line as a user meets it: ranges checked when parsed, one error-line shape, one escaping
rule for names, ``--version`` / ``--quiet`` / ``--threads``, ``classify --stream --json``, devices the
machine lacks, and ``evaluate`` next to a checkpoint folder it cannot write."""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import warnings

import pytest
import tiny_models
import torch
from tiny_models import assert_one_error, error_lines, run_cli, run_module
from torch.utils.data import DataLoader

from vision2seq import __version__
from vision2seq.errors import escape
from vision2seq.resources import auto_threads, configure_threads, worker_count

tiny_captioner = tiny_models.tiny_captioner
tiny_video = tiny_models.tiny_video
torch_one_thread = tiny_models.torch_one_thread


def test_version(capsys):
    code, out, _ = run_cli(capsys, "--version")
    assert code == 0 and out.strip() == f"vision2seq {__version__}"


@pytest.mark.parametrize("command", ["train", "caption", "classify", "evaluate", "demo"])
def test_help_describes_the_command_without_foreign_examples(capsys, command):
    code, out, _ = run_cli(capsys, command, "--help")
    assert code == 0 and "--threads" in out
    description = out.split("\n\n")[1]
    assert description[0].isupper() and "plain function" not in out
    if command in ("evaluate", "demo"):  # neither trains into an output_dir of the user's choosing
        assert "train.epochs" not in out and "output_dir=" not in out


# --- every numeric option is checked by argparse, with the range in the one-line message ------------

REFUSED = [
    ("caption", "--batch-size", "0", ">= 1"),
    ("caption", "--workers", "-1", ">= 0"),
    ("caption", "--max-len", "0", ">= 1"),
    ("caption", "--beam-size", "0", ">= 1"),
    ("caption", "--threads", "0", ">= 1"),
    ("classify", "--top-k", "-1", ">= 1"),
    ("classify", "--frame-step", "0", ">= 1"),
    ("classify", "--batch-size", "two", "an integer >= 1"),
    ("classify", "--workers", "-3", ">= 0"),
]


@pytest.mark.parametrize(("command", "option", "value", "expected"), REFUSED)
def test_numeric_options_out_of_range_are_usage_errors(capsys, command, option, value, expected):
    code, out, err = run_cli(capsys, command, "--checkpoint", "best.pt", option, value, "x")
    assert code == 2 and out == ""
    line = assert_one_error(
        err, command, f"argument {option}", expected, repr(value) if value == "two" else value
    )
    assert line.endswith(f"(see vision2seq {command} --help)")


def test_bad_device_names_and_missing_gpus_are_one_line_usage_errors(capsys, tiny_captioner):
    code, _, err = run_cli(
        capsys, "caption", "--checkpoint", tiny_captioner.checkpoint, "--device", "banana", "x"
    )
    assert code == 2
    assert_one_error(err, "caption", "argument --device", "'banana'")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    code, _, err = run_cli(
        capsys, "caption", "--checkpoint", tiny_captioner.checkpoint, "--device", "cuda", "x"
    )
    assert code == 2
    assert_one_error(err, "caption", "device 'cuda'", "no CUDA GPU", "use cpu or auto")
    # The same check guards the config key.
    code, _, err = run_cli(capsys, "train", tiny_captioner.config, "train.device=banana", "--quiet")
    assert code == 2
    assert_one_error(err, "train", "device 'banana'", "not a device name")


def test_usage_error_exit_status_in_a_real_process():
    proc = run_module("classify", "--checkpoint", "best.pt", "--frame-step", "0", "clip.avi")
    assert proc.returncode == 2 and proc.stdout == ""
    assert_one_error(proc.stderr, "classify", "argument --frame-step: must be >= 1, got 0")


# --- one shape for error lines, one escaping rule for names ----------------------------------------


def test_escape_writes_control_characters_visibly():
    assert escape("a\nb\tc\rd") == "a\\nb\\tc\\rd"
    assert escape("\x1b[31mred\x1b[0m") == "\\x1b[31mred\\x1b[0m"
    assert escape("\x9b2J \x7f") == "\\x9b2J \\x7f"
    assert escape("plain name é ü 漢.png") == "plain name é ü 漢.png"


ODD_NAMES = ["line\nbreak.png", "tab\tname.png", "\x1b[31mred.png"]


def test_odd_file_names_stay_one_line_each_and_json_stays_exact(capsys, tiny_captioner, tmp_path):
    source = sorted(tiny_captioner.data.glob("*.png"))[0]
    for name in ODD_NAMES:
        shutil.copy(source, tmp_path / name)
    (tmp_path / "bad\x1b]0;title\x07.png").write_bytes(b"not an image")
    ckpt = tiny_captioner.checkpoint
    code, out, err = run_cli(capsys, "caption", "--checkpoint", ckpt, tmp_path, "--workers", "0")
    assert code == 1
    lines = out.splitlines()
    assert len(lines) == 3 and all(line.count("\t") == 1 for line in lines)
    printed = sorted(line.split("\t")[0].rsplit("/", 1)[-1] for line in lines)
    assert printed == sorted(escape(name) for name in ODD_NAMES)
    (bad,) = error_lines(err)
    assert "\x1b" not in err and "\x07" not in err
    assert bad.startswith(str(tmp_path)) and "bad\\x1b]0;title\\x07.png: " in bad  # path: reason

    code, out, _ = run_cli(capsys, "caption", "--checkpoint", ckpt, tmp_path, "--workers", "0", "--json")
    assert code == 1
    assert sorted(os.path.basename(row["file"]) for row in json.loads(out)) == sorted(ODD_NAMES)


def test_skipped_files_are_path_colon_reason_for_images_and_videos(
    capsys, tiny_captioner, tiny_video, tmp_path
):
    missing_image, missing_video = tmp_path / "gone.png", tmp_path / "gone.avi"
    code, _, err = run_cli(capsys, "caption", "--checkpoint", tiny_captioner.checkpoint, missing_image)
    assert code == 1 and error_lines(err) == [f"{missing_image}: file not found"]
    code, _, err = run_cli(
        capsys, "classify", "--checkpoint", tiny_video.checkpoint, missing_video, "--workers", "0"
    )
    (line,) = error_lines(err)
    assert code == 1 and line == f"{missing_video}: missing file"


# --- --quiet, --threads, stream JSON lines ----------------------------------------------------------


def test_quiet_caption_and_classify_print_nothing_on_stderr(capsys, tiny_captioner, tiny_video, monkeypatch):
    from vision2seq.inference.captioner import Captioner

    seen = []
    original = Captioner.caption_files

    def spy(self, paths, **kwargs):
        seen.append(kwargs["progress"])
        return original(self, paths, **kwargs)

    monkeypatch.setattr(Captioner, "caption_files", spy)
    images = sorted(tiny_captioner.data.glob("*.png"))[:3]
    code, out, err = run_cli(capsys, "caption", "--checkpoint", tiny_captioner.checkpoint, *images, "--quiet")
    assert code == 0 and len(out.splitlines()) == 3 and err == "" and seen == [False]
    clip = sorted(tiny_video.data.rglob("*.avi"))[0]
    code, out, err = run_cli(
        capsys, "classify", "--checkpoint", tiny_video.checkpoint, clip, "--quiet", "--threads", "1"
    )
    assert code == 0 and len(out.splitlines()) == 1 and err == ""


def test_classify_stream_json_prints_one_json_object_a_line(capsys, tiny_video):
    clip = sorted(tiny_video.data.rglob("*.avi"))[0]
    args = ("classify", "--checkpoint", tiny_video.checkpoint, clip, "--stream", "--json", "--top-k", "2")
    code, out, _ = run_cli(capsys, *args)
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(rows) == 4  # one running prediction per frame of the 4-frame clip
    assert [row["frame"] for row in rows] == [0, 1, 2, 3]
    assert all(row["file"] == str(clip) and len(row["labels"]) == 2 for row in rows)
    assert rows[0]["time"] == 0 and {"label", "score"} == set(rows[-1]["labels"][0])


def test_threads_follow_cpus_workers_and_load():
    assert auto_threads(workers=0, cpus=2, load=0.0) == 1  # a 2-core laptop keeps a core for the rest
    assert auto_threads(workers=2, cpus=2, load=0.0) == 1
    assert auto_threads(workers=0, cpus=2, load=3.5) == 1
    assert auto_threads(workers=2, cpus=64, load=0.3) == 61
    assert auto_threads(workers=4, cpus=64, load=10.2) == 49  # other work on the server is left its cores
    assert worker_count(4, cpus=2) == 2 and worker_count(0, cpus=2) == 0 and worker_count(2, cpus=16) == 2


def test_configure_threads_sets_torch_and_says_so(capsys, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert configure_threads(3, workers=0) == 3 and torch.get_num_threads() == 3
    assert capsys.readouterr().err.strip() == "vision2seq: 3 torch threads (--threads / train.threads)"
    threads = configure_threads(None, workers=0, announce=False)
    assert threads == torch.get_num_threads() >= 1 and capsys.readouterr().err == ""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    assert configure_threads(None, workers=0) == 1
    assert "(OMP_NUM_THREADS)" in capsys.readouterr().err
    torch.set_num_threads(1)


def test_loader_workers_sized_to_the_machine_raise_no_torch_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns "... suggested max number of worker ..." as UserWarning
        loader = DataLoader(list(range(4)), batch_size=2, num_workers=worker_count(64))
        assert sum(len(batch) for batch in loader) == 4


# --- evaluate next to a read-only checkpoint folder -------------------------------------------------


def test_evaluate_video_in_a_read_only_folder_prints_metrics_and_warns(
    capsys, tiny_video, tmp_path, monkeypatch
):
    folder = tmp_path / "readonly"
    folder.mkdir()
    checkpoint = folder / "best.pt"
    shutil.copy(tiny_video.checkpoint, checkpoint)
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    if os.geteuid() == 0:  # root writes anyway: make the write fail as it does for everyone else

        def refuse(path, *args, **kwargs):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))

        monkeypatch.setattr("vision2seq.viz.video.write_confusion_csv", refuse)
    try:
        code, out, err = run_cli(capsys, "evaluate", "--checkpoint", checkpoint, "--quiet")
    finally:
        folder.chmod(stat.S_IRWXU)
    assert code == 0
    assert "top1\t" in out and "mean_class_accuracy\t" in out
    (warning,) = error_lines(err)
    assert warning.startswith("vision2seq evaluate: warning: cannot write ")
    assert "confusion_test.csv (permission denied)" in warning
    assert not (folder / "confusion_test.csv").exists()


def test_overrides_may_follow_options(capsys, tiny_captioner):
    args = (
        "evaluate",
        "--checkpoint",
        tiny_captioner.checkpoint,
        "--json",
        "--quiet",
        "generation.max_len=2",
    )
    code, out, _ = run_cli(capsys, *args)
    assert code == 0 and "bleu_4" in json.loads(out)
    code, _, err = run_cli(capsys, *args[:3], "--quiet", "--stray")
    assert code == 2
    assert_one_error(err, "evaluate", "unrecognized arguments: --stray")


def test_train_threads_come_from_the_flag_else_the_config(capsys, tiny_captioner, monkeypatch):
    from types import SimpleNamespace

    requested = []
    monkeypatch.setattr("vision2seq.resources.configure_threads", lambda n, *a, **k: requested.append(n))
    done = SimpleNamespace(best_metric=None, best_epoch=0, monitor="bleu_4", epochs_run=0, output_dir="run")
    monkeypatch.setattr("vision2seq.train.train", lambda *a, **k: done)
    config = tiny_captioner.config
    assert run_cli(capsys, "train", config, "train.threads=3", "--quiet")[0] == 0
    assert run_cli(capsys, "train", config, "train.threads=3", "--threads", "2", "--quiet")[0] == 0
    assert run_cli(capsys, "train", config, "--quiet")[0] == 0
    assert requested == [3, 2, None]
