"""Property-based tests (hypothesis) of the text, dataset-list and frame-sampling code that reads user input.

* Tokenizer: lower-case tokens without whitespace; re-tokenizing joined (or detokenized) tokens gives
  the same tokens.
* Vocabulary: encode/decode round trip for known words, ``<unk>`` for the others, ``to_list`` round trip.
* Annotation and split-list parsers: random well-formed files parse to the right counts; random garbage
  raises ``UserError`` and never another exception.
* Frame samplers: indices always valid, sorted and as many as requested, in every mode.
* Configs: any YAML text and override raises ``ConfigError`` (one short line) or loads; JSON nested
  past ``MAX_JSON_DEPTH`` is one line, never a RecursionError.
* Feature caches: with any bytes flipped or cut off, a row read is the original or a
  ``FeatureCacheError``, never wrong values.
"""

from __future__ import annotations

import itertools
import json
import string
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vision2seq.config import ConfigError, load_config
from vision2seq.data.captions import load_caption_dataset, select_split
from vision2seq.data.features import FeatureCacheError, FeatureStore, write_meta
from vision2seq.data.sampling import sample_clip_indices, sample_multi_clip_indices
from vision2seq.data.tokenizer import detokenize, tokenize
from vision2seq.data.video.datasets import parse_csv, parse_hmdb51, parse_ucf101
from vision2seq.data.vocab import SPECIALS, UNK, Vocabulary
from vision2seq.errors import UserError
from vision2seq.evaluation.coco_files import (
    align_references,
    load_coco_references,
    load_coco_results,
    load_karpathy_references,
)
from vision2seq.jsonfiles import MAX_JSON_DEPTH, read_json

FUZZ = settings(max_examples=150, deadline=None, database=None)
FILES = settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

# Text as captions come: words, digits, punctuation, accents, other scripts, odd whitespace.
caption_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(string.ascii_letters + string.digits + string.punctuation + " \t\n"),
        st.characters(codec="utf-8", categories=["L", "M", "N", "P", "S", "Z"]),
    ),
    max_size=60,
)
words = st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=8)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def _scratch() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="vision2seq-fuzz-")


# --- tokenizer ----------------------------------------------------------------------------------


@FUZZ
@given(caption_text)
def test_tokens_are_lower_case_without_whitespace_and_stable(text: str) -> None:
    tokens = tokenize(text)
    for token in tokens:
        assert token and token == token.lower()
        assert not any(ch.isspace() for ch in token)
    assert tokenize(" ".join(tokens)) == tokens
    assert tokenize(detokenize(tokens)) == tokens


# --- vocabulary ---------------------------------------------------------------------------------


@FUZZ
@given(
    corpus=st.lists(st.lists(words, max_size=8), max_size=12),
    sentence=st.lists(words, max_size=10),
    min_freq=st.integers(1, 3),
    max_len=st.none() | st.integers(0, 12),
)
def test_vocabulary_round_trips(corpus, sentence, min_freq, max_len) -> None:
    vocab = Vocabulary.build(corpus, min_freq)
    counts = Counter(w for tokens in corpus for w in tokens)
    assert vocab.words[: len(SPECIALS)] == list(SPECIALS)
    assert set(vocab.words[len(SPECIALS) :]) == {w for w, c in counts.items() if c >= min_freq}
    ids = vocab.encode(sentence, max_len)
    kept = sentence[:max_len] if max_len is not None else sentence
    assert ids[0] == vocab.bos_id and ids[-1] == vocab.eos_id and len(ids) == len(kept) + 2
    assert vocab.decode(ids) == [w if w in vocab.index else UNK for w in kept]
    known = [w for w in kept if w in vocab.index]
    assert vocab.decode(vocab.encode(known)) == known
    copy = Vocabulary(vocab.to_list())
    assert copy.words == vocab.words and copy.index == vocab.index
    assert copy.to_list() is not vocab.words  # a copy, safe to store


@FUZZ
@given(st.lists(words, max_size=6))
def test_vocabulary_refuses_bad_word_lists(extra) -> None:
    with pytest.raises(ValueError):
        Vocabulary(extra)  # no specials first
    if extra:
        with pytest.raises(ValueError):
            Vocabulary([*SPECIALS, *extra, extra[0]])  # a word twice


# --- caption annotation files -----------------------------------------------------------------

file_names = st.text(alphabet=string.ascii_letters + string.digits + "_-", min_size=1, max_size=10).map(
    lambda s: f"{s}.jpg"
)
splits = st.sampled_from(["train", "val", "test", "restval"])
sentence = st.one_of(
    st.builds(lambda raw: {"raw": raw}, caption_text),
    st.builds(lambda tokens: {"tokens": tokens}, st.lists(words, min_size=1, max_size=6)),
)
karpathy_image = st.fixed_dictionaries(
    {"filename": file_names, "split": splits, "sentences": st.lists(sentence, min_size=1, max_size=4)},
    optional={"filepath": st.sampled_from(["", "val2014", "a/b"]), "cocoid": st.integers(0, 10**6)},
)


def _image_id(image: dict) -> str:
    return str(image.get("cocoid", str(Path(image.get("filepath", "")) / image["filename"])))


def _has_words(sentence: dict) -> bool:
    return bool(tokenize(sentence["raw"])) if "raw" in sentence else bool(sentence["tokens"])


@FILES
@given(images=st.lists(karpathy_image, max_size=12, unique_by=_image_id))
def test_well_formed_karpathy_files_parse_to_the_right_counts(images) -> None:
    with _scratch() as tmp:
        path = Path(tmp) / "dataset.json"
        path.write_text(json.dumps({"images": images}))
        records = load_caption_dataset(path, Path(tmp) / "images")
    images = [im for im in images if any(_has_words(s) for s in im["sentences"])]  # the rest are skipped
    assert len(records) == len(images)
    for split in ("train", "val", "restval"):
        assert len(select_split(records, split)) == sum(im["split"] == split for im in images)
    for record, image in zip(records, images, strict=True):
        assert len(record.captions) == len(record.tokens) == sum(map(_has_words, image["sentences"]))
        assert all(record.tokens)
        assert record.path.name == image["filename"] and record.split == image["split"]
        assert record.path.is_relative_to(Path(tmp) / "images")


@FILES
@given(
    captions=st.dictionaries(
        st.integers(0, 10**9), st.lists(caption_text, min_size=1, max_size=3), max_size=10
    ),
    unannotated=st.integers(0, 3),
)
def test_well_formed_coco_files_parse_to_the_right_counts(captions, unannotated) -> None:
    ids = [*captions, *(-1 - i for i in range(unannotated))]
    data = {
        "images": [{"id": i, "file_name": f"COCO_{i}.jpg"} for i in ids],
        "annotations": [{"image_id": i, "caption": c} for i, caps in captions.items() for c in caps],
    }
    with _scratch() as tmp:
        path = Path(tmp) / "captions.json"
        path.write_text(json.dumps(data))
        records = load_caption_dataset(path, tmp)
        references = load_coco_references(path) if captions else {}
    with_words = {str(i): [c for c in caps if tokenize(c)] for i, caps in captions.items()}
    with_words = {i: caps for i, caps in with_words.items() if caps}
    # Images without captions (or with empty ones only) are not records.
    assert {r.key: r.captions for r in records} == with_words
    assert references == captions


# Structured garbage: the keys the parsers look for, holding any JSON value.
KEYS = ["images", "annotations", "filename", "filepath", "split", "sentences", "raw", "tokens", "cocoid"]
KEYS += ["imgid", "id", "file_name", "image_id", "caption"]
garbage_entry = st.dictionaries(
    st.sampled_from(KEYS), json_values | st.lists(json_values, max_size=3), max_size=5
)
garbage_json = st.one_of(
    json_values,
    st.fixed_dictionaries({"images": st.lists(garbage_entry | json_values, max_size=4)}),
    st.fixed_dictionaries(
        {"images": st.lists(garbage_entry, max_size=3), "annotations": st.lists(garbage_entry, max_size=3)}
    ),
    st.fixed_dictionaries(
        {
            "images": st.lists(
                st.fixed_dictionaries({"filename": file_names, "sentences": json_values}), max_size=2
            )
        }
    ),
)


@FILES
@given(data=garbage_json, raw=st.none() | st.binary(max_size=40))
def test_garbage_caption_files_raise_user_errors_only(data, raw) -> None:
    with _scratch() as tmp:
        path = Path(tmp) / "dataset.json"
        path.write_bytes(raw if raw is not None else json.dumps(data).encode())
        for read in (
            lambda: select_split(load_caption_dataset(path, tmp), ["train", "test"]),
            lambda: load_coco_results(path),
            lambda: load_coco_references(path),
            lambda: load_karpathy_references(path, "test"),
        ):
            try:
                read()
            except UserError as exc:
                assert "\n" not in str(exc) and str(path) in str(exc)


@FUZZ
@given(
    results=st.dictionaries(st.integers(0, 50) | st.text(max_size=6), caption_text, max_size=6),
    references=st.dictionaries(
        st.integers(0, 50) | file_names, st.lists(caption_text, min_size=1), max_size=6
    ),
)
def test_aligning_results_with_references_raises_user_errors_only(results, references) -> None:
    try:
        aligned = align_references(results, references)
    except UserError:
        return
    assert set(aligned) == set(results)


# --- video split lists --------------------------------------------------------------------------

class_names = st.lists(
    st.text(alphabet=string.ascii_letters, min_size=1, max_size=8),
    min_size=1,
    max_size=5,
    unique_by=str.lower,
)


@FILES
@given(classes=class_names, data=st.data())
def test_well_formed_ucf101_lists_parse_to_the_right_counts(classes, data) -> None:
    clips = {name: data.draw(st.integers(0, 4), label=name) for name in classes}
    with _scratch() as tmp:
        root, ann = Path(tmp) / "UCF-101", Path(tmp) / "lists"
        ann.mkdir()
        train, test = [], []
        for label, name in enumerate(classes, start=1):
            (root / name).mkdir(parents=True)
            for c in range(clips[name]):
                rel = f"{name}/v_{name}_g{c + 1:02d}_c01.avi"
                (root / rel).touch()
                (train if c % 2 else test).append((rel, label))
        (ann / "classInd.txt").write_text("".join(f"{i} {n}\r\n" for i, n in enumerate(classes, 1)))
        (ann / "trainlist01.txt").write_text("".join(f"{rel} {label}\r\n" for rel, label in train))
        (ann / "testlist01.txt").write_text("".join(f"{rel}\r\n" for rel, _ in test))
        parsed_train = parse_ucf101(root, ann, subset="train")
        parsed_test = parse_ucf101(root, ann, subset="test")
    assert parsed_train.class_names == parsed_test.class_names == classes
    assert [s.label for s in parsed_train.samples] == [label - 1 for _, label in train]
    assert [s.label for s in parsed_test.samples] == [label - 1 for _, label in test]


csv_rows = st.lists(
    st.tuples(
        st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=6), st.sampled_from(["a", "b", "c"])
    ),
    min_size=1,
    max_size=12,
    unique_by=lambda row: row[0],
)


@FILES
@given(rows=csv_rows, header=st.booleans(), with_split=st.booleans())
def test_well_formed_csv_lists_parse_to_the_right_counts(rows, header, with_split) -> None:
    with _scratch() as tmp:
        root = Path(tmp) / "videos"
        root.mkdir()
        lines = ["path,label,split" if with_split else "path,label"] if header else []
        for n, (name, label) in enumerate(rows):
            (root / f"{name}.mp4").touch()
            lines.append(
                f"{name}.mp4,{label}" + (f",{'val' if n % 3 == 0 else 'train'}" if with_split else "")
            )
        listing = Path(tmp) / "list.csv"
        listing.write_text("\n".join(lines) + "\n")
        parsed = parse_csv(root, listing)
        val = parse_csv(root, listing, subset="val") if with_split else None
    assert parsed.class_names == sorted({label for _, label in rows})
    assert [parsed.class_names[s.label] for s in parsed.samples] == [label for _, label in rows]
    if val is not None:
        assert len(val) == len(range(0, len(rows), 3))


split_text = st.text(
    alphabet=st.sampled_from(string.ascii_letters + string.digits + " ./\\,_-\r\n\t" + "²٣é:*\x00"),
    max_size=80,
)


@FILES
@given(
    class_ind=split_text, train=split_text, test=split_text, csv_text=split_text, raw=st.binary(max_size=30)
)
def test_garbage_split_lists_raise_user_errors_only(class_ind, train, test, csv_text, raw) -> None:
    with _scratch() as tmp:
        root, ann = Path(tmp) / "videos", Path(tmp) / "lists"
        root.mkdir()
        ann.mkdir()
        for name, text in (("classInd.txt", class_ind), ("trainlist01.txt", train), ("testlist01.txt", test)):
            (ann / name).write_text(text, encoding="utf-8")
        (ann / "wave_test_split1.txt").write_text(train, encoding="utf-8")
        (ann / "list.csv").write_text(csv_text, encoding="utf-8")
        (ann / "raw.csv").write_bytes(raw)
        for parse in (
            lambda: parse_ucf101(root, ann, subset="train"),
            lambda: parse_ucf101(root, ann, subset="test", skip_missing=True),
            lambda: parse_hmdb51(root, ann, subset="train", skip_missing=True),
            lambda: parse_csv(root, ann / "list.csv", skip_missing=True),
            lambda: parse_csv(root, ann / "raw.csv"),
        ):
            try:
                videos = parse()
            except UserError as exc:
                assert "\n" not in str(exc)
            else:
                assert all(s.path.is_relative_to(root) for s in videos.samples)
                assert all(0 <= s.label < len(videos.class_names) for s in videos.samples)


# --- frame samplers -----------------------------------------------------------------------------

counts = st.integers(1, 2000)
clip_lengths = st.integers(1, 64)


def _valid(indices: list[int], num_frames: int, count: int) -> None:
    assert len(indices) == count
    assert all(isinstance(i, int) and 0 <= i < num_frames for i in indices)
    assert indices == sorted(indices)


@FUZZ
@given(
    num_frames=counts,
    count=clip_lengths,
    mode=st.sampled_from(["segment", "dense"]),
    stride=st.integers(1, 16),
    random=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_clip_indices_are_valid_sorted_and_complete(num_frames, count, mode, stride, random, seed) -> None:
    indices = sample_clip_indices(
        num_frames, count, mode, stride, random=random, rng=np.random.default_rng(seed)
    )
    _valid(indices, num_frames, count)
    again = sample_clip_indices(
        num_frames, count, mode, stride, random=random, rng=np.random.default_rng(seed)
    )
    assert again == indices  # the same generator state gives the same clip
    if mode == "segment" and num_frames >= count:
        assert len(set(indices)) == count  # one frame from each segment
    if mode == "dense" and num_frames >= (count - 1) * stride + 1:
        assert all(b - a == stride for a, b in itertools.pairwise(indices))


@FUZZ
@given(
    num_frames=counts,
    num_clips=st.integers(1, 10),
    count=clip_lengths,
    mode=st.sampled_from(["segment", "dense"]),
    stride=st.integers(1, 16),
)
def test_multi_clip_indices_are_valid_sorted_and_complete(num_frames, num_clips, count, mode, stride) -> None:
    clips = sample_multi_clip_indices(num_frames, num_clips, count, mode, stride)
    assert len(clips) == num_clips
    for clip in clips:
        _valid(clip, num_frames, count)
    assert [clip[0] for clip in clips] == sorted(clip[0] for clip in clips)  # ordered by position
    if num_clips == 1:
        assert clips[0] == sample_clip_indices(num_frames, count, mode, stride)


@FUZZ
@given(num_frames=st.integers(-5, 0), count=st.integers(-5, 5), mode=st.sampled_from(["segment", "dense"]))
def test_samplers_refuse_non_positive_counts(num_frames, count, mode) -> None:
    with pytest.raises(ValueError):
        sample_clip_indices(num_frames, count, mode)
    with pytest.raises(ValueError):
        sample_multi_clip_indices(num_frames, 2, count, mode)


# --- configs, JSON nesting, damaged feature caches ------------------------------------------------

yaml_text = st.one_of(
    st.text(alphabet=st.sampled_from("abt:-[]{},&*!|>'\"#\n 0123456789.xyz_"), max_size=120),
    st.lists(
        st.sampled_from(
            [
                "task: captioning",
                "task: video_classification",
                "train:",
                "  epochs: 3",
                "  epochs: -1",
                "  lr: .nan",
                "  batch_size: 0",
                "model: {decoder: {kind: attention}}",
                "data: &d {num_frames: 0}",
                "generation: *d",
                "x: &x [*x]",
                "train: {epochs: 2, epochs: 3}",
                "<<: {seed: 1}",
                "seed: 99999999999999999999999",
            ]
        ),
        max_size=8,
    ).map("\n".join),
)


@FUZZ
@given(text=yaml_text, override=st.text(max_size=30))
def test_config_text_raises_config_errors_only(text, override) -> None:
    with _scratch() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(text)
        for overrides in ([], [override], [f"train.lr={override}"]):
            try:
                load_config(path, overrides)
            except ConfigError as exc:
                assert "\n" not in str(exc) and len(str(exc)) < 400


@FUZZ
@given(depth=st.integers(1, 3000), kind=st.sampled_from(["[]", "{}"]))
def test_nested_json_is_read_or_refused_in_one_line(depth, kind) -> None:
    opening, closing = ('{"a": ', "}") if kind == "{}" else ("[", "]")
    with _scratch() as tmp:
        path = Path(tmp) / "nested.json"
        path.write_text(opening * depth + "1" + closing * depth)
        if depth <= MAX_JSON_DEPTH:
            assert read_json(path) is not None
        else:
            with pytest.raises(UserError, match=r"nested more than 64 levels deep"):
                read_json(path)


def _synthetic_cache(directory: Path, rows: int = 6, shape: tuple[int, ...] = (3, 4)) -> np.ndarray:
    directory.mkdir()
    values = np.random.default_rng(0).standard_normal((rows, *shape)).astype(np.float16)
    array = np.lib.format.open_memmap(
        directory / "features.npy", mode="w+", dtype=np.float16, shape=values.shape
    )
    array[:] = values
    array.flush()
    del array
    write_meta(directory, [f"item{i}" for i in range(rows)], {})
    return values


@settings(max_examples=60, deadline=None, database=None)
@given(
    damage=st.lists(
        st.tuples(st.sampled_from(["features.npy", "meta.json"]), st.floats(0, 1), st.integers(1, 255)),
        min_size=1,
        max_size=4,
    ),
    cut=st.none() | st.tuples(st.sampled_from(["features.npy", "meta.json"]), st.floats(0, 1)),
)
def test_a_damaged_feature_cache_never_returns_wrong_rows(damage, cut) -> None:
    """Whatever bytes are flipped (or cut off), every row read is the original or a FeatureCacheError."""
    with _scratch() as tmp:
        directory = Path(tmp) / "cache"
        original = _synthetic_cache(directory)
        for name, where, mask in damage:
            data = bytearray((directory / name).read_bytes())
            data[int(where * (len(data) - 1))] ^= mask
            (directory / name).write_bytes(bytes(data))
        if cut is not None:
            data = (directory / cut[0]).read_bytes()
            (directory / cut[0]).write_bytes(data[: int(cut[1] * len(data))])
        try:
            store = FeatureStore(directory)
        except FeatureCacheError as exc:
            assert "\n" not in str(exc) and str(directory) in str(exc)
            return
        for row in range(len(original)):
            try:
                values = store[row].numpy()
            except FeatureCacheError as exc:
                assert str(directory) in str(exc)
                continue
            np.testing.assert_array_equal(values, original[row].astype(np.float32))


def test_a_cache_header_that_numpy_cannot_tokenize_is_damage(tmp_path) -> None:
    """Found by the fuzz test above: a flipped byte can leave an unclosed bracket in the .npy header,
    which numpy's header parser reports as tokenize.TokenError, not ValueError."""
    from vision2seq.data.features import FeatureCacheError, FeatureStore, write_meta

    directory = tmp_path / "cache"
    directory.mkdir()
    np.save(directory / "features.npy", np.zeros((2, 3), dtype=np.float16))
    write_meta(directory, ["a", "b"], {})
    raw = bytearray((directory / "features.npy").read_bytes())
    header_end = raw.index(b"}")
    raw[header_end - 2 : header_end + 1] = b" ( "  # an unclosed bracket where the dict ends
    (directory / "features.npy").write_bytes(bytes(raw))
    with pytest.raises(FeatureCacheError, match="header unreadable"):
        FeatureStore(directory)
