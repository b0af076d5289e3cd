"""Karpathy and COCO caption files, splits, missing images and path safety."""

import json

import pytest
from PIL import Image

from vision2seq.data.captions import (
    AnnotationError,
    check_images_exist,
    load_caption_dataset,
    select_split,
)


def write_images(root, names):
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8)).save(root / name)


def test_karpathy_file(tmp_path):
    write_images(tmp_path, ["train2014/a.jpg", "val2014/b.jpg", "val2014/c.jpg"])
    data = {
        "images": [
            {
                "filepath": "train2014",
                "filename": "a.jpg",
                "cocoid": 7,
                "split": "train",
                "sentences": [
                    {"raw": "A Dog runs.", "tokens": ["a", "dog", "runs"]},
                    {"tokens": ["a", "dog"]},
                ],
            },
            {
                "filepath": "val2014",
                "filename": "b.jpg",
                "cocoid": 8,
                "split": "restval",
                "sentences": [{"raw": "a cat"}],
            },
            {
                "filepath": "val2014",
                "filename": "c.jpg",
                "cocoid": 9,
                "split": "test",
                "sentences": [{"raw": "x"}],
            },
        ]
    }
    (tmp_path / "dataset_coco.json").write_text(json.dumps(data))
    records = load_caption_dataset(tmp_path / "dataset_coco.json", tmp_path)
    train = select_split(records, ["train", "restval"])
    assert [r.key for r in train] == ["7", "8"]
    assert train[0].path == tmp_path / "train2014" / "a.jpg"
    assert train[0].captions == ["A Dog runs.", "a dog"] and train[0].tokens[0] == ["a", "dog", "runs", "."]
    assert [r.key for r in select_split(records, "test")] == ["9"]
    assert check_images_exist(train, "x") == train


def test_coco_files_with_and_without_a_validation_file(tmp_path):
    write_images(tmp_path / "train", [f"{i}.jpg" for i in range(40)])
    coco = {
        "images": [{"id": i, "file_name": f"{i}.jpg"} for i in range(40)],
        "annotations": [{"image_id": i, "caption": f"image {i}"} for i in range(40)]
        + [{"image_id": 0, "caption": "second caption"}],
    }
    (tmp_path / "captions_train.json").write_text(json.dumps(coco))
    records = load_caption_dataset(tmp_path / "captions_train.json", tmp_path / "train")
    by_key = {r.key: r for r in records}
    assert by_key["0"].captions == ["image 0", "second caption"]
    assert len(select_split(records, "val")) == 2 and len(select_split(records, "train")) == 38
    assert select_split(records, "test") == select_split(records, "val")  # COCO: test means val
    write_images(tmp_path / "val", ["v.jpg"])
    (tmp_path / "captions_val.json").write_text(
        json.dumps(
            {"images": [{"id": 99, "file_name": "v.jpg"}], "annotations": [{"image_id": 99, "caption": "v"}]}
        )
    )
    records = load_caption_dataset(
        tmp_path / "captions_train.json", tmp_path / "train", tmp_path / "captions_val.json", tmp_path / "val"
    )
    assert [r.key for r in select_split(records, "val")] == ["99"] and len(
        select_split(records, "train")
    ) == 40


def test_bad_annotation_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [')
    with pytest.raises(AnnotationError, match=r"bad\.json: malformed JSON at line 1"):
        load_caption_dataset(bad, tmp_path)
    bad.write_text(json.dumps({"images": [{"split": "train", "sentences": []}]}))
    with pytest.raises(AnnotationError, match=r"images\[0\] needs 'filename'"):
        load_caption_dataset(bad, tmp_path)
    bad.write_text(json.dumps({"images": [{"filename": "../../etc/passwd", "sentences": [{"raw": "x"}]}]}))
    with pytest.raises(AnnotationError, match="leaves the dataset root"):
        load_caption_dataset(bad, tmp_path)
    bad.write_text(
        json.dumps({"images": [{"filename": f"{i}.jpg", "sentences": [{"raw": "x"}]} for i in range(5)]})
    )
    records = load_caption_dataset(bad, tmp_path)
    with pytest.raises(AnnotationError, match=r"5 of 5 referenced images are missing \(e\.g\. .*0\.jpg"):
        check_images_exist(records, bad)
    assert check_images_exist(records, bad, skip_missing=True) == []
