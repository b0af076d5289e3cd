"""MSR-VTT and MSVD caption files as shipped: splits, captions, clip paths (files and frame folders),
missing clips reported once, and clip names kept inside the videos folder."""

import json
import logging

import pytest
from video_caption_fixtures import motion_clips, write_msrvtt, write_msvd

from vision2seq.config import ConfigError, load_config
from vision2seq.data.captions import AnnotationError
from vision2seq.data.video.caption_loaders import load_clips
from vision2seq.data.video.caption_records import parse_msrvtt, parse_msvd, select_splits

SHAPES = {"train": [(8, 2), (10, 4)], "validate": [(12, 6)], "test": [(8, 12)]}


def touch_clips(videos, keys, suffix=".mp4"):
    videos.mkdir(parents=True, exist_ok=True)
    for key in keys:
        (videos / f"{key}{suffix}").write_bytes(b"")


def config_for(*overrides):
    return load_config(None, ["task=video_captioning", *overrides])


@pytest.mark.parametrize("pair", [False, True], ids=["one-file", "official-pair"])
def test_msrvtt_one_file_and_official_pair_give_the_same_clips(tmp_path, pair):
    clips = motion_clips(SHAPES, colours=["red"])
    files = write_msrvtt(tmp_path / "ann", clips, pair=pair)
    touch_clips(tmp_path / "videos", [c.key for c in clips])
    parsed = parse_msrvtt(tmp_path / "videos", files)
    assert [c.key for c in parsed] == [c.key for c in clips]
    by_key = {c.key: c for c in parsed}
    for clip in clips:
        record = by_key[clip.key]
        assert record.split == {"validate": "val"}.get(clip.split, clip.split)
        assert record.captions == clip.captions
        assert record.tokens[0][:3] == ["a", "red", "square"]
        assert record.path == tmp_path / "videos" / f"{clip.key}.mp4"
    assert len(select_splits(parsed, "val")) == 2 and len(select_splits(parsed, ["train"])) == 4


def test_msrvtt_pair_through_the_config_keys(tmp_path):
    clips = motion_clips(SHAPES, colours=["red"])
    train_val, test = write_msrvtt(tmp_path / "ann", clips, pair=True)
    touch_clips(tmp_path / "videos", [c.key for c in clips])
    data = [f"data.videos={tmp_path / 'videos'}", f"data.annotations={train_val}"]
    config = config_for(*data, f"data.test_annotations={test}")
    assert {c.key for c in load_clips(config, ["test"])} == {c.key for c in clips if c.split == "test"}
    with pytest.raises(AnnotationError, match="no clips in split"):
        load_clips(config_for(*data), ["test"])  # the test file was not given


def test_msrvtt_frame_folder_is_used_when_no_file_exists(tmp_path):
    clips = motion_clips({"train": [(8, 2)]}, colours=["red"])
    [file] = write_msrvtt(tmp_path, clips)
    (tmp_path / "videos" / clips[0].key).mkdir(parents=True)
    parsed = parse_msrvtt(tmp_path / "videos", [file])
    assert parsed[0].path == tmp_path / "videos" / clips[0].key


@pytest.mark.parametrize("video_id", ["../outside", "/etc/passwd", "a/../../b"])
def test_msrvtt_video_ids_cannot_leave_the_videos_folder(tmp_path, video_id):
    data = {
        "videos": [{"video_id": video_id, "split": "train"}],
        "sentences": [{"video_id": video_id, "caption": "a clip"}],
    }
    (tmp_path / "info.json").write_text(json.dumps(data))
    with pytest.raises(AnnotationError, match="leaves the dataset root"):
        parse_msrvtt(tmp_path / "videos", [tmp_path / "info.json"])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"videos": [{"video_id": "v0", "split": "training"}], "sentences": []}, "has split 'training'"),
        ({"videos": [], "sentences": [{"video_id": "v9", "caption": "x"}]}, "which no annotation file lists"),
        ({"videos": {"v0": "train"}, "sentences": []}, "a 'videos' list of objects"),
        ({"videos": [{"video_id": 7, "split": "train"}], "sentences": []}, "has video_id 7"),
    ],
)
def test_msrvtt_malformed_files_name_the_problem(tmp_path, data, message):
    (tmp_path / "info.json").write_text(json.dumps(data))
    with pytest.raises(AnnotationError, match=message) as err:
        parse_msrvtt(tmp_path, [tmp_path / "info.json"])
    assert str(tmp_path / "info.json") in str(err.value)


def msvd_dataset(tmp_path, n=10):
    names = [f"-clip{i}_{i}_{i + 5}" for i in range(n)]
    captions = {name: [f"a man does thing {i}", f"someone does thing {i}"] for i, name in enumerate(names)}
    descriptions, mapping = write_msvd(tmp_path / "ann", names, captions)
    touch_clips(tmp_path / "videos", names, ".avi")
    return names, descriptions, mapping


def test_msvd_split_follows_the_mapping_order(tmp_path):
    names, descriptions, mapping = msvd_dataset(tmp_path)
    clips = parse_msvd(tmp_path / "videos", descriptions, mapping, (6, 2, 2))
    assert [c.key for c in clips] == names
    assert [c.split for c in clips] == ["train"] * 6 + ["val"] * 2 + ["test"] * 2
    assert clips[3].captions == ["a man does thing 3", "someone does thing 3"]  # comment lines skipped
    assert clips[0].path == tmp_path / "videos" / f"{names[0]}.avi"


def test_msvd_split_follows_the_vid_numbers_when_lines_are_shuffled(tmp_path):
    names, descriptions, mapping = msvd_dataset(tmp_path)
    lines = mapping.read_text().splitlines()
    mapping.write_text("\n".join(lines[5:] + lines[:5]) + "\n")  # vid6..vid10 first
    clips = parse_msvd(tmp_path / "videos", descriptions, mapping, (6, 2, 2))
    assert [c.key for c in clips] == names
    assert [c.split for c in clips] == ["train"] * 6 + ["val"] * 2 + ["test"] * 2


def test_msvd_standard_split_needs_the_full_mapping(tmp_path):
    _, descriptions, mapping = msvd_dataset(tmp_path)
    with pytest.raises(AnnotationError, match=r"lists 10 clips, fewer than the 1200\+100\+670"):
        parse_msvd(tmp_path / "videos", descriptions, mapping)


def test_msvd_through_the_config_keys(tmp_path):
    names, descriptions, mapping = msvd_dataset(tmp_path)
    data = [f"data.videos={tmp_path / 'videos'}", f"data.annotations={descriptions}"]
    config = config_for(*data, f"data.mapping={mapping}", "data.msvd_split=[6,2,2]")
    assert [c.key for c in load_clips(config, ["test"])] == names[8:]
    with pytest.raises(ConfigError, match=r"data\.mapping: MSVD needs the id mapping file"):
        load_clips(config_for(*data), ["train"])


def test_missing_clips_are_one_error_or_one_warning(tmp_path, caplog):
    clips = motion_clips(SHAPES, colours=["red", "blue"])
    [file] = write_msrvtt(tmp_path / "ann", clips)
    present = [c.key for c in clips][::2]
    touch_clips(tmp_path / "videos", present)
    data = [f"data.videos={tmp_path / 'videos'}", f"data.annotations={file}"]
    wanted = ["train", "val"]
    with pytest.raises(AnnotationError, match=r"6 of 12 listed clips are missing") as err:
        load_clips(config_for(*data), wanted)
    assert "data.skip_missing=true" in str(err.value) and "\n" not in str(err.value)

    with caplog.at_level(logging.WARNING):
        kept = load_clips(config_for(*data, "data.skip_missing=true"), wanted)
    assert sorted(c.key for c in kept) == sorted(k for k in present if not k.startswith("test"))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "skipping 6 of 12 listed clips" in warnings[0]
