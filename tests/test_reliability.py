"""Reliability classes, one test (or a few) per class: every write goes through one path that survives a
full disk; overwrite never deletes what the run reads; what is derived from weights follows the weights;
resume works from any checkpoint a run writes; settings and bounded resources are checked before work;
the METEOR jar is never trusted to answer; strings from files or models are escaped in plain output."""

from __future__ import annotations

import csv
import errno
import itertools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import tiny_models
import torch
from tiny_models import ROOT, error_lines, run_cli

from vision2seq.config import ConfigError, load_config
from vision2seq.data.features import FeatureCacheError, cached_features
from vision2seq.demo import make_shapes_dataset
from vision2seq.engine import loop as engine
from vision2seq.engine.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from vision2seq.engine.run_log import log_epoch
from vision2seq.errors import UserError
from vision2seq.files import WriteError, atomic_write

tiny_captioner = tiny_models.tiny_captioner
torch_one_thread = tiny_models.torch_one_thread

CONFIG = """\
task: captioning
output_dir: {out}
seed: 3
data: {{annotations: {data}/dataset_shapes.json, images: {data}/images, train_splits: [train],
        min_word_freq: 1, cache_dir: {cache}}}
model:
  encoder: {{name: resnet18, weights: null, output: pooled, image_size: 32}}
  decoder: {{kind: show_tell, embed_dim: 8, hidden_dim: 16, dropout: 0.0}}
train: {{epochs: 1, batch_size: 8, lr: 0.01, num_workers: 0, checkpoint_minutes: 0}}
generation: {{beam_size: 1, max_len: 6}}
"""


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shapes")
    make_shapes_dataset(root / "data", n_train=9, n_val=2, n_test=2, seed=4)
    return root


_numbers = itertools.count()


def _config(shapes: Path, out: Path, *overrides: str):
    path = (
        shapes / "configs" / f"{out.parent.name}_{out.name}_{next(_numbers)}.yaml"
    )  # not in the run's folders
    path.parent.mkdir(exist_ok=True)
    path.write_text(CONFIG.format(out=out, data=shapes / "data", cache=shapes / "cache"))
    return path, load_config(path, list(overrides))


# --- one write path: a full disk is one line and keeps the previous file -----------------------------


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path, monkeypatch) -> None:
    out = tmp_path / "run"
    log_epoch(out, {"epoch": 1, "train_loss": 1.0}, None)
    before = (out / "metrics.csv").read_bytes()

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(WriteError) as caught:
        log_epoch(out, {"epoch": 2, "train_loss": 0.5}, None)
    assert str(caught.value) == (
        f"{out / 'metrics.csv'}: cannot write metrics: no space left on device (the previous file is kept)"
    )
    assert (out / "metrics.csv").read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["metrics.csv"]
    with pytest.raises(CheckpointError, match="cannot save checkpoint: no space left on device"):
        save_checkpoint(out / "last.pt", {"model": {}})


def test_an_error_that_is_not_about_the_disk_passes_through_atomic_write(tmp_path) -> None:
    with pytest.raises(ZeroDivisionError), atomic_write(tmp_path / "x") as f:
        f.write(b"half")
        1 / 0  # noqa: B018
    assert list(tmp_path.iterdir()) == []


def _cache_inputs(n: int):
    class Items(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return n

        def __getitem__(self, i: int):
            return i, torch.full((4,), float(i))

    def collate(items):
        return torch.tensor([i for i, _ in items]), torch.stack([x for _, x in items]), []

    return [f"k{i}" for i in range(n)], Items(), collate


@pytest.mark.parametrize("where", ["posix_fallocate", "pwrite"])
def test_full_disk_while_caching_features_is_one_line_and_leaves_nothing(
    tmp_path, monkeypatch, where
) -> None:
    keys, items, collate = _cache_inputs(6)
    real = getattr(os, where)

    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, where, full)
    with pytest.raises(FeatureCacheError) as caught:
        cached_features(tmp_path, "f" * 64, keys, items, collate, lambda x: x * 2, (4,), num_workers=0)
    assert str(caught.value).startswith(
        f"{tmp_path}: cannot write the feature cache: no space left on device"
    )
    assert list(tmp_path.iterdir()) == []  # the temporary build folder is gone
    monkeypatch.setattr(os, where, real)
    store = cached_features(tmp_path, "f" * 64, keys, items, collate, lambda x: x * 2, (4,), num_workers=0)
    assert torch.equal(store[5], torch.full((4,), 10.0))  # written with plain writes, read back exactly


@pytest.mark.slow  # a subprocess (the monkeypatched tests above are the fast tier)
def test_file_size_limit_while_caching_is_one_line_not_a_signal(tmp_path) -> None:
    # A real limit from the kernel (RLIMIT_FSIZE, as on a full disk the write fails): the memory-mapped
    # cache this replaced died of SIGBUS here, with no message and its temporary folder left behind.
    script = textwrap.dedent(
        f"""
        import resource, signal, sys, torch
        sys.path.insert(0, {str(ROOT / "tests")!r})
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
        from test_reliability import _cache_inputs
        from vision2seq.data.features import cached_features
        from vision2seq.errors import UserError
        keys, items, collate = _cache_inputs(10)
        try:
            cached_features(__import__("pathlib").Path({str(tmp_path)!r}), "a" * 64, keys, items, collate,
                            lambda x: x.repeat(1, 10000), (40000,), num_workers=0)
        except UserError as exc:
            print(exc)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "cannot write the feature cache: file too large" in proc.stdout
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow  # a subprocess (the monkeypatched tests above are the fast tier)
def test_full_disk_on_standard_output_is_one_line(tiny_captioner) -> None:
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "vision2seq",
                "caption",
                "--checkpoint",
                str(tiny_captioner.checkpoint),
                str(tiny_captioner.data),
                "--quiet",
                "--workers",
                "0",
            ],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            timeout=300,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
    lines = error_lines(proc.stderr)
    assert proc.returncode == 1
    assert lines[-1] == "vision2seq caption: error: cannot write standard output: no space left on device"


# --- overwrite never deletes what the run reads; a failed run leaves no folder -------------------


def test_overwrite_refuses_to_delete_the_init_from_checkpoint(tiny_captioner, tmp_path, capsys) -> None:
    out = tmp_path / "xe"
    out.mkdir()
    best = out / "best.pt"
    best.write_bytes(tiny_captioner.checkpoint.read_bytes())
    code, _, err = run_cli(
        capsys,
        "train",
        tiny_captioner.config,
        f"output_dir={out}",
        f"train.init_from={best}",
        "train.overwrite=true",
        "--quiet",
    )
    assert code == 1
    assert error_lines(err) == [
        f"vision2seq train: error: {out}: train.overwrite=true would delete best.pt, which this run reads "
        f"(train.init_from={best}); copy it out of output_dir first, or choose another output_dir"
    ]
    assert best.read_bytes() == tiny_captioner.checkpoint.read_bytes()


def test_missing_data_is_refused_before_downloads_and_leaves_no_folder(shapes, tmp_path, capsys) -> None:
    path, _ = _config(shapes, tmp_path / "runs" / "a")
    missing = tmp_path / "nowhere"
    code, _, err = run_cli(
        capsys, "train", path, f"data.images={missing}", "model.encoder.weights=DEFAULT", "--quiet"
    )
    assert code == 1
    assert error_lines(err) == [
        f"vision2seq train: error: data.images: {missing} does not exist (check the path, or override it: "
        "data.images=...)"
    ]
    assert not (tmp_path / "runs").exists()


def test_a_run_that_fails_before_writing_removes_the_folders_it_made(shapes, tmp_path, capsys) -> None:
    path, _ = _config(shapes, tmp_path / "runs" / "deep" / "a")
    code, _, err = run_cli(capsys, "train", path, "data.train_splits=[nosuchsplit]", "--quiet")
    assert code != 0 and error_lines(err)
    assert not (tmp_path / "runs").exists()


# --- derived from weights: computed after init_from's weights are loaded, keyed by them --------------


def test_init_from_encoder_weights_key_the_feature_cache(tiny_captioner, shapes, tmp_path) -> None:
    from vision2seq.tasks import captioning
    from vision2seq.tasks.base import encoder_state

    source = load_checkpoint(tiny_captioner.checkpoint)
    _, config = _config(
        shapes,
        tmp_path / "frozen",
        "model.encoder.trainable_from=null",
        f"data.annotations={tiny_captioner.annotations}",
        f"data.images={tiny_captioner.data}",
        "data.skip_missing=true",
    )
    init = encoder_state(source["model"])
    cpu = torch.device("cpu")
    started = captioning.CaptioningTask.build(config, cpu, init=init)
    plain = captioning.CaptioningTask.build(config, cpu)
    for name, tensor in started.model.encoder.state_dict().items():
        assert torch.equal(tensor, init[name]), name  # the cache was built from these weights
    ours = started.train.dataset.source.store.directory
    theirs = plain.train.dataset.source.store.directory
    assert ours != theirs  # another encoder: another cache


# --- resume works from any checkpoint a run writes -------------------------------------------------


def _interrupt_first_validation(monkeypatch) -> None:
    real = engine.evaluate

    def interrupted(*args, **kwargs):
        monkeypatch.setattr(engine, "evaluate", real)
        raise KeyboardInterrupt

    monkeypatch.setattr(engine, "evaluate", interrupted)


def test_resume_from_a_time_based_checkpoint_after_the_last_batch(
    shapes, tmp_path, capsys, monkeypatch
) -> None:
    from vision2seq.train import train

    straight = train(_config(shapes, tmp_path / "straight", "train.epochs=2")[1], progress=False)
    # checkpoint_minutes tiny: last.pt after every step, the last (partial) batch of epoch 1 included;
    # then the run is interrupted in that epoch's validation.
    path, config = _config(shapes, tmp_path / "cut", "train.epochs=2", "train.checkpoint_minutes=1e-9")
    _interrupt_first_validation(monkeypatch)
    code, _, err = run_cli(
        capsys, "train", path, "train.epochs=2", "train.checkpoint_minutes=1e-9", "--quiet"
    )
    assert code == 130
    assert error_lines(err)[-1] == (
        f"vision2seq train: interrupted; continue with: vision2seq train {path} train.epochs=2 "
        "train.checkpoint_minutes=1e-9 --resume"
    )
    saved = load_checkpoint(Path(config.output_dir) / "last.pt")
    assert saved["epoch"] == 0 and saved["batch_in_epoch"] == saved["step"] > 0  # after epoch 1's last batch
    stale = Path(config.output_dir) / ".last.pt.abc123.tmp"
    stale.write_bytes(b"partial")
    resumed = train(config, resume=True, progress=False)
    assert not stale.exists()
    a, b = load_checkpoint(tmp_path / "straight" / "last.pt"), load_checkpoint(tmp_path / "cut" / "last.pt")
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name
    losses = []
    for name in ("cut", "straight"):
        with open(tmp_path / name / "metrics.csv", newline="") as f:
            losses.append([row["train_loss"] for row in csv.DictReader(f)])
    assert losses[0] == losses[1]  # the interrupted epoch's mean loss counts every batch once
    assert resumed.epochs_run == straight.epochs_run == 2


def test_resuming_with_more_epochs_refuses_a_schedule_that_would_change(shapes, tmp_path, capsys) -> None:
    path, _ = _config(shapes, tmp_path / "cos")
    assert run_cli(capsys, "train", path, "train.scheduler=cosine", "--quiet")[0] == 0
    code, _, err = run_cli(
        capsys, "train", path, "train.scheduler=cosine", "train.epochs=3", "--resume", "--quiet"
    )
    assert code == 1
    [line] = error_lines(err)
    assert "cannot resume with train.epochs=3: the run was started with train.epochs=1" in line
    assert "train.init_from=" in line
    # A constant learning rate does not depend on the run's length: the run is extended.
    path, _ = _config(shapes, tmp_path / "flat")
    assert run_cli(capsys, "train", path, "--quiet")[0] == 0
    code, out, err = run_cli(capsys, "train", path, "train.epochs=2", "--resume", "--quiet")
    assert code == 0, err
    assert out.startswith("trained 2 epochs")


def test_metrics_csv_keeps_its_header_when_validation_is_not_every_epoch(shapes, tmp_path) -> None:
    from vision2seq.train import train

    _, config = _config(shapes, tmp_path / "v2", "train.epochs=2", "train.val_every=2")
    train(config, progress=False)
    with open(tmp_path / "v2" / "metrics.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert {len(r) for r in rows} == {len(rows[0])}  # every row as long as the header
    header = rows[0]
    assert "bleu_4" in header and rows[1][header.index("bleu_4")] == "" and rows[2][header.index("bleu_4")]


def test_no_early_stopping_message_after_the_last_epoch(shapes, tmp_path, capsys, monkeypatch) -> None:
    scores = iter([0.5, 0.4, 0.3])
    monkeypatch.setattr(engine, "evaluate", lambda *a, **k: {"bleu_4": next(scores)})
    path, _ = _config(shapes, tmp_path / "es")
    code, _, err = run_cli(
        capsys, "train", path, "train.epochs=2", "train.early_stopping_patience=1", "--quiet"
    )
    assert code == 0 and "early stopping" not in err
    scores = iter([0.5, 0.4, 0.3])
    path, _ = _config(shapes, tmp_path / "es3")
    code, out, err = run_cli(
        capsys, "train", path, "train.epochs=3", "train.early_stopping_patience=1", "--quiet"
    )
    assert "early stopping: bleu_4 did not improve for 1 epochs" in err and out.startswith("trained 2 epochs")


# --- trained encoder, a last batch of one image -----------------------------------------------------


def test_trained_encoder_with_a_lone_last_image_trains(shapes, tmp_path, capsys) -> None:
    from vision2seq.data.samplers import lone_last_batch

    assert lone_last_batch(9, 4) and not lone_last_batch(8, 4) and not lone_last_batch(1, 1)
    assert lone_last_batch(9, 2, world_size=2) and not lone_last_batch(8, 2, world_size=2)
    path, _ = _config(shapes, tmp_path / "bn")
    # 9 images of 3 captions, 6 captions (2 images) a batch: the last batch holds one image, whose batch
    # norm in resnet18's last stage (1x1 at 32 px) would see a single value per channel.
    code, _, err = run_cli(
        capsys, "train", path, "model.encoder.trainable_from=all", "train.batch_size=6", "--quiet"
    )
    assert code == 0, err
    # batch_size 8: training batches of 3 images, but the feature-statistics pass (8 images a batch,
    # in training mode) would end with one image.
    path, _ = _config(shapes, tmp_path / "bn8")
    code, _, err = run_cli(
        capsys, "train", path, "model.encoder.trainable_from=all", "train.batch_size=8", "--quiet"
    )
    assert code == 0, err


# --- every setting checked before work, against the merged config -----------------------------------


def test_settings_are_checked_before_any_work(shapes, tmp_path, capsys, monkeypatch) -> None:
    path, _ = _config(shapes, tmp_path / "m")
    code, _, err = run_cli(capsys, "train", path, "train.monitor=cidr", "--quiet")
    assert code == 2 and not (tmp_path / "m").exists()
    assert error_lines(err) == [
        "vision2seq train: error: override 'train.monitor=cidr': train.monitor 'cidr' is not a metric of the "
        "captioning task's validation; choose one of bleu_1, bleu_2, bleu_3, bleu_4, rouge_l, cider"
    ]
    code, _, err = run_cli(capsys, "train", path, "train.epoch=3")
    assert error_lines(err)[0].startswith("vision2seq train: error: override 'train.epoch=3': unknown key")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochs: [1\n")
    with pytest.raises(ConfigError) as caught:
        load_config(bad)
    assert "<unicode string>" not in str(caught.value) and f'in "{bad}", line' in str(caught.value)
    for env, value in (("WORLD_SIZE", "abc"), ("WORLD_SIZE", "2")):
        monkeypatch.setenv(env, value)
        for name in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
            monkeypatch.delenv(name, raising=False)
        code, _, err = run_cli(capsys, "train", path, "--quiet")
        assert code == 2 and len(error_lines(err)) == 1 and "torchrun" in err
    monkeypatch.delenv("WORLD_SIZE")


def test_encoder_weights_that_are_not_a_file(tmp_path) -> None:
    from vision2seq.models.encoder import ImageEncoder

    with pytest.raises(UserError, match=r"^/dev/zero: is not a regular file"):
        ImageEncoder("resnet18", "/dev/zero", image_size=32)


# --- bounded resources: checked before allocation -----------------------------------------------------


def test_generation_length_is_bounded_before_allocation(tiny_captioner, capsys) -> None:
    code, _, err = run_cli(
        capsys,
        "caption",
        "--checkpoint",
        tiny_captioner.checkpoint,
        tiny_captioner.data,
        "--beam-size",
        "3",
        "--max-len",
        "1000000000",
        "--quiet",
    )
    assert code == 2
    assert error_lines(err) == [
        "vision2seq caption: error: generation settings: key 'generation.max_len' must be in [1, 1000] "
        "(words), got 1000000000"
    ]


def test_layer_sizes_of_a_checkpoint_config_are_checked_before_building(tiny_captioner, tmp_path) -> None:
    from vision2seq.tasks import restore_checkpoint

    payload = load_checkpoint(tiny_captioner.checkpoint)
    payload["config"]["model"]["decoder"]["hidden_dim"] = 1 << 16  # would be gigabytes of LSTM weights
    path = tmp_path / "edited.pt"
    save_checkpoint(path, {k: v for k, v in payload.items() if k != "format_version"})
    with pytest.raises(
        CheckpointError, match=r"weights do not match the checkpoint's config \(.*the config asks for"
    ):
        restore_checkpoint(path, device="cpu")
    # The same with the decoder's weights taken out: the layers asked for are counted, never built.
    payload["model"] = {k: v for k, v in payload["model"].items() if not k.startswith("decoder.")}
    save_checkpoint(path, {k: v for k, v in payload.items() if k != "format_version"})
    with pytest.raises(CheckpointError, match=r"it asks for [\d,]+ values, the file holds"):
        restore_checkpoint(path, device="cpu")


# --- the METEOR jar is an untrusted external process -------------------------------------------------


def _fake_java(tmp_path: Path, body: str) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    java = bin_dir / "java"
    java.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
    java.chmod(0o755)
    jar = tmp_path / "meteor-1.5.jar"
    jar.write_bytes(b"")
    return jar


def test_meteor_jar_that_never_answers_times_out(tmp_path, monkeypatch) -> None:
    from vision2seq.evaluation import meteor

    jar = _fake_java(tmp_path, "import time\ntime.sleep(600)\n")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    monkeypatch.setattr(meteor, "START_TIMEOUT_S", 1.0)
    scorer = meteor.MeteorScorer(jar)
    try:
        with pytest.raises(meteor.MetricUnavailableError, match="did not answer within 1 s"):
            scorer.score(["a dog"], [["a dog"]])
    finally:
        scorer.close()


def test_meteor_reader_skips_banners_and_input_is_bounded(tmp_path, monkeypatch) -> None:
    from vision2seq.evaluation import meteor

    longest = tmp_path / "longest"
    jar = _fake_java(
        tmp_path,
        f"""
        import sys
        print("Picked up JAVA_TOOL_OPTIONS: -Dfile.encoding=UTF-8", flush=True)
        longest = 0
        for line in sys.stdin:
            longest = max(longest, len(line))
            open({str(longest)!r}, "w").write(str(longest))
            if line.startswith("SCORE"):
                print("1.0 2.0 3.0", flush=True)
            elif line.startswith("EVAL"):
                print("a warning line", flush=True)
                for _ in line.split(" ||| ")[1:]:
                    print("0.25", flush=True)
                print("0.5", flush=True)
        """,
    )
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    scorer = meteor.MeteorScorer(jar)
    try:
        result = scorer.score(["word " * 110_000, "a cat"], [["a dog"], ["a cat"]])
    finally:
        scorer.close()
    assert result.score == 0.5 and result.per_image == [0.25, 0.25]
    assert int(longest.read_text()) < 10 * meteor.MAX_SEGMENT_WORDS


# --- strings from files or models are escaped in plain output ----------------------------------------


def test_captions_from_a_hostile_vocabulary_stay_one_line(tiny_captioner, tmp_path, capsys) -> None:
    payload = load_checkpoint(tiny_captioner.checkpoint)
    vocab = payload["extras"]["vocab"]
    specials = 4
    payload["extras"]["vocab"] = vocab[:specials] + [
        f"w{i}\n{tiny_captioner.data}/x.png\t\x1b[31m" for i in range(len(vocab) - specials)
    ]
    path = tmp_path / "hostile.pt"
    save_checkpoint(path, {k: v for k, v in payload.items() if k != "format_version"})
    code, out, err = run_cli(
        capsys, "caption", "--checkpoint", path, tiny_captioner.data, "--quiet", "--workers", "0"
    )
    assert code == 0, err
    images = [p for p in tiny_captioner.data.iterdir() if p.suffix == ".png"]
    lines = out.splitlines()
    assert len(lines) == len(images)
    assert all(line.count("\t") == 1 and "\x1b" not in line for line in lines)


def test_per_image_ids_are_escaped(tmp_path, capsys) -> None:
    evil = "img\n1\x1b[2J"
    (tmp_path / "res.json").write_text(json.dumps([{"image_id": evil, "caption": "a dog runs"}]))
    (tmp_path / "ann.json").write_text(
        json.dumps({"annotations": [{"image_id": evil, "caption": "a dog runs"}]})
    )
    code, out, _ = run_cli(
        capsys,
        "score-captions",
        "--predictions",
        tmp_path / "res.json",
        "--references",
        tmp_path / "ann.json",
        "--per-image",
        "--metrics",
        "bleu",
    )
    assert code == 0
    [row] = [line for line in out.splitlines() if line.startswith("img")]
    assert row.startswith("img\\n1\\x1b[2J\t") and "\x1b" not in out


# --- video data: blank references, one-group splits ---------------------------------------------------


def test_video_clips_whose_references_are_blank_are_skipped_and_reported(tmp_path, capsys) -> None:
    from vision2seq.data.video.caption_records import parse_msrvtt

    data = {
        "videos": [{"video_id": "v1", "split": "train"}, {"video_id": "v2", "split": "train"}],
        "sentences": [
            {"video_id": "v1", "caption": "a man runs"},
            {"video_id": "v1", "caption": "   "},
            {"video_id": "v2", "caption": ""},
        ],
    }
    path = tmp_path / "msrvtt.json"
    path.write_text(json.dumps(data))
    clips = parse_msrvtt(tmp_path, [path])
    assert [(c.key, c.captions) for c in clips] == [("v1", ["a man runs"])]
    err = capsys.readouterr().err
    assert "skipped 2 empty captions" in err and "1 clips had no other caption and are skipped" in err


def test_all_clips_in_one_group_get_the_right_advice(tmp_path) -> None:
    from vision2seq.data.video.datasets import VideoList, VideoSample
    from vision2seq.data.video.loaders import _no_val_advice

    one = VideoList([VideoSample(tmp_path / f"v_A_g01_c0{i}.avi", 0, "g01") for i in range(3)], ["A"])
    advice = _no_val_advice(one, 0.5)
    assert "one group" in advice and "raise it" not in advice
