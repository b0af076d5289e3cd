"""Dataset layouts (UCF101, HMDB51, class folders, CSV) and the clip Dataset, on generated data."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader
from video_fixtures import (
    make_class_folder_layout,
    make_hmdb51_layout,
    make_text_file,
    make_ucf101_layout,
    moving_square_frames,
    write_video,
)

from vision2seq.config import ConfigError, load_config
from vision2seq.data.video.clips import VideoClipDataset
from vision2seq.data.video.datasets import (
    VideoList,
    VideoSample,
    parse_class_folders,
    parse_csv,
    parse_hmdb51,
    parse_ucf101,
)
from vision2seq.data.video.loaders import SPLITS, load_video_list
from vision2seq.data.video.reader import VideoDecodeError
from vision2seq.errors import UserError

UCF_CLASSES = ("ApplyEyeMakeup", "Archery", "BabyCrawling")


@pytest.fixture(scope="module")
def ucf(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_ucf101_layout(tmp_path_factory.mktemp("ucf"), UCF_CLASSES, groups=4, clips_per_group=2)


@pytest.fixture(scope="module")
def hmdb(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_hmdb51_layout(tmp_path_factory.mktemp("hmdb"), ("wave", "walk", "clap"), videos_per_class=4)


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_class_folder_layout(tmp_path_factory.mktemp("folders"), ("left", "right"), groups=5)


def rel(paths, root: Path) -> list[str]:
    return sorted(str(Path(p).relative_to(root)) for p in paths)


# --- UCF101 ---------------------------------------------------------------------------------------


def test_ucf101_train_and_test_lists(ucf: tuple[Path, Path]) -> None:
    videos, annotations = ucf
    train = parse_ucf101(videos, annotations, split=1, subset="train")
    test = parse_ucf101(videos, annotations, split=1, subset="test")
    assert train.class_names == test.class_names == list(UCF_CLASSES)
    assert len(train) == 3 * 3 * 2 and len(test) == 3 * 1 * 2  # group 1 is the test group
    assert {s.group for s in test.samples} == {"g01"} and "g01" not in {s.group for s in train.samples}
    for vl in (train, test):
        for sample in vl.samples:
            assert sample.path.is_file()
            assert sample.path.parent.name == vl.class_names[sample.label]


def test_ucf101_missing_videos_are_one_error_or_skipped(ucf: tuple[Path, Path], tmp_path: Path) -> None:
    videos, annotations = ucf
    copy = tmp_path / "UCF-101"
    shutil.copytree(videos, copy)
    for path in sorted(copy.rglob("*_c01.avi"))[:4]:
        path.unlink()
    with pytest.raises(UserError, match=r"trainlist01\.txt: 3 of 18 listed videos are missing") as caught:
        parse_ucf101(copy, annotations, subset="train")
    assert "first: " in str(caught.value) and "\n" not in str(caught.value)
    assert len(parse_ucf101(copy, annotations, subset="train", skip_missing=True)) == 15


def test_ucf101_refuses_paths_that_leave_the_root(ucf: tuple[Path, Path], tmp_path: Path) -> None:
    videos, annotations = ucf
    bad = tmp_path / "lists"
    shutil.copytree(annotations, bad)
    (bad / "trainlist01.txt").write_text("Archery/../../../etc/passwd 2\n")
    with pytest.raises(UserError, match=r"trainlist01\.txt:1: path .* leaves the dataset root"):
        parse_ucf101(videos, bad, subset="train")
    (bad / "trainlist01.txt").write_text("/etc/passwd 2\n")
    with pytest.raises(UserError, match="leaves the dataset root"):
        parse_ucf101(videos, bad, subset="train")


def test_ucf101_malformed_lists(ucf: tuple[Path, Path], tmp_path: Path) -> None:
    videos, annotations = ucf
    bad = tmp_path / "lists"
    shutil.copytree(annotations, bad)
    (bad / "trainlist01.txt").write_text("Archery/v_Archery_g02_c01.avi 9\n")
    with pytest.raises(UserError, match=r"trainlist01\.txt:1: label '9' is not in 1\.\.3"):
        parse_ucf101(videos, bad, subset="train")
    (bad / "testlist01.txt").write_text("Fencing/v_Fencing_g01_c01.avi\n")
    with pytest.raises(UserError, match=r"class folder 'Fencing' is not in classInd\.txt"):
        parse_ucf101(videos, bad, subset="test")
    with pytest.raises(UserError, match="split must be 1, 2 or 3"):
        parse_ucf101(videos, bad, split=4)
    with pytest.raises(UserError, match=r"trainlist02\.txt: missing"):
        parse_ucf101(videos, bad, split=2)


# --- HMDB51 ---------------------------------------------------------------------------------------


def test_hmdb51_splits(hmdb: tuple[Path, Path]) -> None:
    videos, splits = hmdb
    train = parse_hmdb51(videos, splits, split=1, subset="train")
    test = parse_hmdb51(videos, splits, split=1, subset="test")
    assert train.class_names == ["clap", "walk", "wave"]  # sorted split-file names
    assert len(train) == 3 * 2 and len(test) == 3 * 1  # id 0 (video 0) is unused
    assert {s.path.name.split("_")[0] for s in test.samples} == {"Movie1"}
    assert all(s.group and s.group.startswith("Movie") for s in train.samples)
    for sample in train.samples + test.samples:
        assert sample.path.parent.name == train.class_names[sample.label]
    with pytest.raises(UserError, match="no HMDB51 split files"):
        parse_hmdb51(videos, splits, split=2)


# --- class folders --------------------------------------------------------------------------------


def test_class_folder_split_is_group_aware_and_seeded(folders: Path) -> None:
    every = parse_class_folders(folders, "all")
    train = parse_class_folders(folders, "train", val_fraction=0.2, seed=0)
    val = parse_class_folders(folders, "val", val_fraction=0.2, seed=0)
    assert every.class_names == train.class_names == ["left", "right"]
    assert len(every) == 2 * 5 * 2
    assert rel([s.path for s in train.samples + val.samples], folders) == rel(
        [s.path for s in every.samples], folders
    )
    assert not {s.group for s in train.samples} & {s.group for s in val.samples}
    assert len(val) == 4  # one of the five groups, in both classes
    assert val.samples == parse_class_folders(folders, "val", val_fraction=0.2, seed=0).samples
    splits = {
        tuple(s.path.name for s in parse_class_folders(folders, "val", seed=k).samples) for k in range(8)
    }
    assert len(splits) > 1


def test_class_folder_split_without_groups_is_per_class(tmp_path: Path) -> None:
    root = make_class_folder_layout(tmp_path, ("a", "b", "c"), groups=5, clips_per_group=1, ucf_names=False)
    train = parse_class_folders(root, "train", val_fraction=0.2, seed=3)
    val = parse_class_folders(root, "val", val_fraction=0.2, seed=3)
    assert sorted(s.label for s in val.samples) == [0, 1, 2]
    assert len(train) == 12 and all(s.group is None for s in train.samples)


def test_class_folders_of_frame_folders_load(tmp_path: Path) -> None:
    root = make_class_folder_layout(
        tmp_path, ("left", "right"), groups=2, clips_per_group=1, frame_folders=True
    )
    clips = parse_class_folders(root, "all")
    assert len(clips) == 4 and all(s.path.is_dir() for s in clips.samples)
    frames, label = VideoClipDataset(clips, num_frames=4)[0]
    assert frames.shape == (4, 3, 32, 32) and label == 0


def test_class_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="missing dataset folder"):
        parse_class_folders(tmp_path / "nope")
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(UserError, match="no clips found"):
        parse_class_folders(tmp_path)


# --- CSV ------------------------------------------------------------------------------------------


@pytest.fixture
def csv_root(tmp_path: Path) -> Path:
    frames = moving_square_frames(8, 32, 32)
    for name in ("abseiling/a1.mp4", "abseiling/a2.mp4", "playing guitar/g1.mp4", "playing guitar/g2.mp4"):
        write_video(tmp_path / "videos" / name, frames)
    return tmp_path


def test_csv_with_header_and_split(csv_root: Path) -> None:
    listing = csv_root / "list.csv"
    listing.write_text(
        "label,path,split\n"
        "abseiling,abseiling/a1.mp4,train\n"
        '"playing guitar","playing guitar/g1.mp4",train\n'
        "abseiling,abseiling/a2.mp4,val\n"
        "playing guitar,playing guitar/g2.mp4,val\n"
    )
    train = parse_csv(csv_root / "videos", listing, subset="train")
    val = parse_csv(csv_root / "videos", listing, subset="val")
    assert train.class_names == val.class_names == ["abseiling", "playing guitar"]
    assert [(s.path.name, s.label) for s in train.samples] == [("a1.mp4", 0), ("g1.mp4", 1)]
    assert [(s.path.name, s.label) for s in val.samples] == [("a2.mp4", 0), ("g2.mp4", 1)]


def test_csv_without_header_and_shared_class_names(csv_root: Path) -> None:
    listing = csv_root / "val.csv"
    listing.write_text("playing guitar/g2.mp4,playing guitar\n\n")
    vl = parse_csv(csv_root / "videos", listing, class_names=["abseiling", "playing guitar"])
    assert [(s.path.name, s.label) for s in vl.samples] == [("g2.mp4", 1)]
    with pytest.raises(UserError, match=r"val\.csv:1: label 'playing guitar' is not one of the 1 classes"):
        parse_csv(csv_root / "videos", listing, class_names=["abseiling"])


def test_csv_errors(csv_root: Path) -> None:
    listing = csv_root / "bad.csv"
    listing.write_text("path,label\n../outside.mp4,abseiling\n")
    with pytest.raises(UserError, match=r"bad\.csv:2: path '\.\./outside\.mp4' leaves the dataset root"):
        parse_csv(csv_root / "videos", listing)
    listing.write_text("path,label\nabseiling/a1.mp4,abseiling\nabseiling/zz.mp4,abseiling\n")
    with pytest.raises(UserError, match=r"1 of 2 listed videos are missing .*first: abseiling/zz\.mp4"):
        parse_csv(csv_root / "videos", listing)
    with pytest.raises(UserError, match="no split column"):
        parse_csv(csv_root / "videos", listing, subset="train")
    listing.write_text("abseiling/a1.mp4\n")
    with pytest.raises(UserError, match="expected at least 2 columns"):
        parse_csv(csv_root / "videos", listing)


# --- VideoClipDataset -----------------------------------------------------------------------------


def test_dataset_returns_clips_and_labels(folders: Path) -> None:
    clips = parse_class_folders(folders, "all")
    frames, label = VideoClipDataset(clips, num_frames=4)[len(clips) - 1]
    assert frames.shape == (4, 3, 32, 32) and frames.dtype == torch.float32 and label == 1
    assert frames.min() >= 0.0 and frames.max() <= 1.0


def test_dataset_applies_the_per_frame_transform(folders: Path) -> None:
    clips = parse_class_folders(folders, "all")

    def transform(image) -> torch.Tensor:
        assert image.mode == "RGB" and image.size == (32, 32)
        return torch.from_numpy(np.array(image.resize((16, 8)))).permute(2, 0, 1).float()

    frames, _ = VideoClipDataset(clips, num_frames=3, transform=transform)[0]
    assert frames.shape == (3, 3, 8, 16)
    clip_frames, _ = VideoClipDataset(clips, num_frames=3, clip_transform=lambda c: c[..., :8].float())[0]
    assert clip_frames.shape == (3, 3, 32, 8)


def test_dataset_multi_clip_shape(folders: Path) -> None:
    clips = parse_class_folders(folders, "all")
    frames, _ = VideoClipDataset(clips, num_frames=4, num_clips=3, mode="dense", stride=1)[0]
    assert frames.shape == (3, 4, 3, 32, 32)
    with pytest.raises(ValueError, match="multi-clip"):
        VideoClipDataset(clips, num_frames=4, num_clips=3, train=True)


def test_training_draws_are_reproducible_per_epoch(folders: Path) -> None:
    clips = parse_class_folders(folders, "all")
    dataset = VideoClipDataset(clips, num_frames=4, train=True, seed=1)
    first = [dataset.index_sampler(0)(40) for _ in range(2)]
    dataset.set_epoch(1)
    per_epoch = [tuple(dataset.index_sampler(0)(40))]
    per_epoch += [tuple(dataset.index_sampler(0)(40)) for e in range(2, 12) if dataset.set_epoch(e) is None]
    assert first[0] == first[1]
    assert len(set(per_epoch) | {tuple(first[0])}) > 1
    dataset.set_epoch(0)
    assert dataset.index_sampler(0)(40) == first[0]
    assert VideoClipDataset(clips, num_frames=4, train=False).index_sampler(0)(40) == [5, 15, 25, 35]


def test_bad_video_is_its_error_line_or_raises_from_load(folders: Path, tmp_path: Path) -> None:
    good = parse_class_folders(folders, "all").samples[:2]
    bad = VideoSample(make_text_file(tmp_path / "broken.avi"), 0)
    dataset = VideoClipDataset(VideoList([*good, bad], ["left", "right"]), num_frames=4)
    with pytest.raises(VideoDecodeError, match=r"broken\.avi: not a video file"):
        dataset.load(2)
    message = dataset[2]
    assert isinstance(message, str) and "\n" not in message
    assert message.startswith(f"{tmp_path / 'broken.avi'}: not a video file")
    assert dataset[0][0].shape == (4, 3, 32, 32)


def test_worker_processes_load_the_same_clips(folders: Path) -> None:
    clips = parse_class_folders(folders, "all")
    dataset = VideoClipDataset(clips, num_frames=4, train=True, seed=5)
    dataset.set_epoch(3)
    in_process = torch.stack([dataset[i][0] for i in range(4)])
    loader = DataLoader(dataset, batch_size=2, num_workers=2)
    batches = [frames for frames, _ in loader]
    assert torch.equal(torch.cat(batches)[:4], in_process)


# --- splits for model selection (load_video_list) --------------------------------------------------


def video_config(videos: Path, annotations: Path | None = None, *extra: str):
    overrides = ["task=video_classification", f"data.videos={videos}", *extra]
    if annotations is not None:
        overrides.append(f"data.annotations={annotations}")
    return load_config(None, overrides)


def paths_of(videos: VideoList) -> set[Path]:
    return {s.path for s in videos.samples}


@pytest.mark.parametrize("layout", ["ucf", "hmdb"])
def test_official_layouts_carve_validation_out_of_the_training_list(layout: str, request) -> None:
    videos, annotations = request.getfixturevalue(layout)
    config = video_config(videos, annotations, "data.val_fraction=0.3")
    train, val, test = (load_video_list(config, s) for s in ("train", "val", "test"))
    official = (parse_ucf101 if layout == "ucf" else parse_hmdb51)(videos, annotations, 1, "train")
    assert val.samples and train.samples and test.samples
    assert paths_of(train) | paths_of(val) == paths_of(official)  # val comes from the training list
    assert not paths_of(train) & paths_of(val)
    assert not paths_of(val) & paths_of(test)  # --split val and --split test score different videos
    assert {s.group for s in train.samples}.isdisjoint({s.group for s in val.samples})  # group-aware
    assert paths_of(load_video_list(config, "val")) == paths_of(val)  # seeded: the same every run


def test_class_folders_refuse_a_test_split(folders: Path) -> None:
    config = video_config(folders)
    assert load_video_list(config, "val").samples
    with pytest.raises(ConfigError, match=r"no 'test' split \(available: train, val\)"):
        load_video_list(config, "test")
    with pytest.raises(ConfigError, match="unknown split 'dev'"):
        load_video_list(config, "dev")


def test_csv_split_column_is_honoured(csv_root: Path) -> None:
    listing = csv_root / "list.csv"
    listing.write_text(
        "path,label,split\n"
        "abseiling/a1.mp4,abseiling,train\n"
        "playing guitar/g1.mp4,playing guitar,train\n"
        "abseiling/a2.mp4,abseiling,val\n"
        "playing guitar/g2.mp4,playing guitar,test\n"
    )
    config = video_config(csv_root / "videos", listing)
    names = {s: sorted(p.name for p in paths_of(load_video_list(config, s))) for s in SPLITS}
    assert names == {"train": ["a1.mp4", "g1.mp4"], "val": ["a2.mp4"], "test": ["g2.mp4"]}


def test_csv_without_split_column_carves_val_and_has_no_test(csv_root: Path) -> None:
    listing = csv_root / "list.csv"
    listing.write_text(
        "".join(
            f"{c}/{n}.mp4,{c}\n"
            for c, n in [
                ("abseiling", "a1"),
                ("abseiling", "a2"),
                ("playing guitar", "g1"),
                ("playing guitar", "g2"),
            ]
        )
    )
    config = video_config(csv_root / "videos", listing, "data.val_fraction=0.5")
    train, val = load_video_list(config, "train"), load_video_list(config, "val")
    assert len(train) == len(val) == 2 and not paths_of(train) & paths_of(val)
    with pytest.raises(ConfigError, match=r"list\.csv: this dataset has no 'test' split"):
        load_video_list(config, "test")


def test_val_fraction_zero_is_refused_for_validation(ucf: tuple[Path, Path]) -> None:
    # Training needs validation clips to pick best.pt, so a zero fraction is refused when the config is read.
    with pytest.raises(ConfigError, match=r"data\.val_fraction' must be in \(0, 1\)"):
        video_config(*ucf, "data.val_fraction=0")


def test_class_folder_that_cannot_be_listed_is_one_error(folders: Path, monkeypatch) -> None:
    real_iterdir = Path.iterdir

    def iterdir(self: Path):  # what a folder without read permission does (tests may run as root)
        if self == folders / "left":
            raise PermissionError(13, "Permission denied", str(self))
        return real_iterdir(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    with pytest.raises(UserError, match=r"left: cannot list folder \(permission denied\); fix its"):
        parse_class_folders(folders, "all")
