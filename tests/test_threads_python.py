"""The Python entry points make the command line's thread choice, and leave a user's choice alone.

On a busy 2-core machine torch's default of two threads made training and streaming from Python 2.5-3.8x
slower than the CLI's one thread (docs/performance.md, "Threads and loader workers"). Here torch's
default is simulated as 3 threads and the automatic choice as 2, so every outcome is told apart on any
machine.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import tiny_models
import torch

import vision2seq
from vision2seq import resources
from vision2seq.inference.captioner import Captioner
from vision2seq.inference.classifier import VideoClassifier

tiny_captioner = tiny_models.tiny_captioner
tiny_video = tiny_models.tiny_video
torch_one_thread = tiny_models.torch_one_thread

DEFAULT, AUTO = 3, 2


@pytest.fixture
def fresh_process(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """As in a new process: torch at its default count, nothing chosen yet, no thread variables."""
    before = torch.get_num_threads()
    monkeypatch.setattr(resources, "_chosen", False)
    monkeypatch.setattr(resources, "_command_line_chose", False)
    monkeypatch.setattr(resources, "_THREADS_AT_IMPORT", DEFAULT)
    monkeypatch.setattr(resources, "_physical_cores", lambda: DEFAULT)
    monkeypatch.setattr(resources, "auto_threads", lambda workers=0, cpus=None, load=None: AUTO)
    for name in resources._THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    torch.set_num_threads(DEFAULT)
    yield
    torch.set_num_threads(before)


def test_inference_classes_make_the_automatic_choice(fresh_process, tiny_captioner, tiny_video):
    Captioner.from_checkpoint(tiny_captioner.checkpoint, device="cpu")
    assert torch.get_num_threads() == AUTO


def test_video_classifier_makes_the_automatic_choice(fresh_process, tiny_video):
    VideoClassifier.from_checkpoint(tiny_video.checkpoint, device="cpu")
    assert torch.get_num_threads() == AUTO


def test_a_count_the_user_set_is_kept(fresh_process, tiny_captioner):
    torch.set_num_threads(5)
    Captioner.from_checkpoint(tiny_captioner.checkpoint, device="cpu")
    assert torch.get_num_threads() == 5


def test_omp_num_threads_is_kept(fresh_process, tiny_video, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    VideoClassifier.from_checkpoint(tiny_video.checkpoint, device="cpu")
    assert torch.get_num_threads() == DEFAULT


def test_set_threads_is_the_public_choice_and_is_kept(fresh_process, tiny_captioner):
    assert vision2seq.set_threads(4) == 4 and torch.get_num_threads() == 4
    Captioner.from_checkpoint(tiny_captioner.checkpoint, device="cpu")
    assert torch.get_num_threads() == 4  # 4 is neither torch's default nor a set_num_threads
    assert vision2seq.set_threads() == AUTO and torch.get_num_threads() == AUTO
    with pytest.raises(ValueError, match=">= 1"):
        vision2seq.set_threads(0)


def test_the_choice_is_made_once_per_process(fresh_process, tiny_captioner):
    Captioner.from_checkpoint(tiny_captioner.checkpoint, device="cpu")
    assert torch.get_num_threads() == AUTO
    torch.set_num_threads(5)  # the user changes it afterwards: a second model does not undo that
    Captioner.from_checkpoint(tiny_captioner.checkpoint, device="cpu")
    assert torch.get_num_threads() == 5


def test_an_unusual_count_at_import_was_set_by_the_user(fresh_process, monkeypatch):
    # torch.set_num_threads(7) before `import vision2seq`: 7 is neither the physical cores nor the CPUs.
    monkeypatch.setattr(resources, "_THREADS_AT_IMPORT", 7)
    monkeypatch.setattr(resources.os, "cpu_count", lambda: 4)
    torch.set_num_threads(7)
    assert resources.ensure_threads() is None and torch.get_num_threads() == 7


def test_importing_vision2seq_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, vision2seq; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_training_from_python_chooses_and_honours_train_threads(fresh_process, tiny_captioner, tmp_path):
    from vision2seq.config import load_config
    from vision2seq.train import train

    def run(name: str, *overrides: str) -> None:
        out = f"output_dir={tmp_path / name}"
        train(load_config(tiny_captioner.config, [out, "train.max_steps=1", *overrides]), progress=False)

    run("auto")
    assert torch.get_num_threads() == AUTO
    run("config", "train.threads=4")  # a count in the config is explicit: it is set
    assert torch.get_num_threads() == 4


def test_the_command_lines_threads_beat_the_config_when_it_trains(fresh_process, monkeypatch):
    from vision2seq.resources import configure_threads, threads_for_run

    monkeypatch.setattr(resources, "_command_line_chose", False)
    configure_threads(1, announce=False)  # `vision2seq train ... --threads 1`
    assert threads_for_run(4) is None and torch.get_num_threads() == 1
