"""Video classification datasets in the layouts they ship in (the torch Dataset of sampled clips is
`vision2seq.data.video.clips`).

Parsers turn a layout into a `VideoList` (samples + class names):

* `parse_ucf101`: ``<videos_root>/<Class>/v_<Class>_gXX_cYY.avi`` with ``ucfTrainTestlist/``
  (``classInd.txt``, ``trainlistNN.txt`` with 1-based labels, ``testlistNN.txt`` with paths only).
* `parse_hmdb51`: ``<videos_root>/<class>/<name>.avi`` with per-class ``<class>_test_splitN.txt``
  files of ``name.avi 0|1|2`` lines (1 train, 2 test, 0 unused).
* `parse_class_folders`: ``<root>/<class>/<clip>``, split into train/val with a seeded, group-aware
  split (UCF-style ``_gXX_`` groups never straddle train and val).
* `parse_csv`: a Kinetics-style ``path,label[,split]`` list (header optional, labels are class names;
  each sample keeps its split value).

`carve_validation` splits a training list into train and val (seeded, group-aware); which split comes
from where for each layout is decided in `vision2seq.data.video.loaders.load_video_list`.

A clip can be a video file or a folder of extracted frames everywhere. Listed clips that do not exist
are one `UserError` (or are skipped with ``skip_missing=True``); listed paths that leave the dataset
root are refused (`vision2seq.data.inputs.join_inside`).
"""

from __future__ import annotations

import csv
import logging
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from vision2seq.data.inputs import VIDEO_SUFFIXES, join_inside
from vision2seq.errors import UserError

logger = logging.getLogger(__name__)

_MISSING_SHOWN = 3
_UCF_GROUP = re.compile(r"_g(\d+)_c\d+", re.IGNORECASE)


@dataclass(frozen=True)
class VideoSample:
    """One labelled clip.

    Attributes:
        path: A video file or a folder of extracted frames.
        label: Class index into the list's ``class_names``.
        group: Clips sharing a group (same actors/scene, e.g. UCF101 ``g08``) must stay on one side of
            a train/val split; None when unknown.
        split: The row's value in a CSV list's split column (``train``, ``val``, ...); None without one.
    """

    path: Path
    label: int
    group: str | None = None
    split: str | None = None


@dataclass
class VideoList:
    """The clips of one subset and the class names their labels index."""

    samples: list[VideoSample]
    class_names: list[str]

    def __len__(self) -> int:
        return len(self.samples)


# --- shared helpers ----------------------------------------------------------------------------


def _is_number(text: str) -> bool:
    """ASCII digits only (``str.isdigit`` also accepts ``"²"``, which ``int`` refuses)."""
    return text.isascii() and text.isdigit()


def read_lines(
    path: Path, what: str, error: type[UserError] = UserError, comment: str | None = None
) -> list[tuple[int, str]]:
    """Non-blank stripped lines of a dataset's list file with 1-based numbers (the official lists use
    CRLF line ends), leaving out lines that start with ``comment``; ``error`` names a missing or
    unreadable file as ``what``."""
    if not path.is_file():
        raise error(f"{path}: missing {what}")
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise error(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), start=1)]
    return [(n, line) for n, line in lines if line and not (comment and line.startswith(comment))]


def _check_missing(
    samples: list[VideoSample], listing: Path, root: Path, skip_missing: bool
) -> list[VideoSample]:
    missing = [s for s in samples if not s.path.exists()]
    if not missing:
        return samples
    gone = {s.path for s in missing}
    if not skip_missing:
        shown = ", ".join(str(s.path.relative_to(root)) for s in missing[:_MISSING_SHOWN])
        raise UserError(
            f"{listing}: {len(missing)} of {len(samples)} listed videos are missing under {root} "
            f"(first: {shown}); fix the paths, or skip them with data.skip_missing=true "
            "(skip_missing=True in Python)"
        )
    logger.warning(
        "%s: skipping %d of %d listed videos missing under %s", listing, len(missing), len(samples), root
    )
    return [s for s in samples if s.path not in gone]


def _ucf_group(name: str) -> str | None:
    match = _UCF_GROUP.search(name)
    return f"g{int(match.group(1)):02d}" if match else None


def _check_subset(subset: str, allowed: tuple[str, ...], dataset: str) -> None:
    if subset not in allowed:
        raise UserError(f"{dataset} subset must be one of {allowed}, got {subset!r}")


# --- UCF101 ------------------------------------------------------------------------------------


def _ucf_classes(class_ind: Path) -> list[str]:
    names = []
    for line_no, line in read_lines(class_ind, "UCF101 class index (classInd.txt)"):
        parts = line.split()
        if len(parts) != 2 or not _is_number(parts[0]) or int(parts[0]) != len(names) + 1:
            raise UserError(f"{class_ind}:{line_no}: expected '{len(names) + 1} ClassName', got {line!r}")
        names.append(parts[1])
    return names


def parse_ucf101(
    videos_root: Path | str,
    annotations_dir: Path | str,
    split: int = 1,
    subset: str = "train",
    *,
    skip_missing: bool = False,
) -> VideoList:
    """The UCF101 train or test list of one of the three official splits.

    Args:
        videos_root: The folder holding one folder per class (``UCF-101/``).
        annotations_dir: ``ucfTrainTestlist/`` with ``classInd.txt`` and the split lists.
        split: 1, 2 or 3.
        subset: ``"train"`` or ``"test"``.
        skip_missing: Drop listed videos that do not exist instead of failing.

    Raises:
        UserError: a missing or malformed list, an unknown class, a path leaving the root, or missing
            videos.
    """
    videos_root, annotations_dir = Path(videos_root), Path(annotations_dir)
    _check_subset(subset, ("train", "test"), "UCF101")
    if split not in (1, 2, 3):
        raise UserError(f"UCF101 split must be 1, 2 or 3, got {split}")
    class_names = _ucf_classes(annotations_dir / "classInd.txt")
    index = {name.lower(): i for i, name in enumerate(class_names)}
    listing = annotations_dir / f"{subset}list{split:02d}.txt"
    samples = []
    for line_no, line in read_lines(listing, f"UCF101 {subset} list"):
        where = f"{listing}:{line_no}"
        relative, *rest = line.split()
        if rest:  # train lists carry a 1-based label
            if not _is_number(rest[0]) or not 1 <= int(rest[0]) <= len(class_names):
                raise UserError(f"{where}: label {rest[0]!r} is not in 1..{len(class_names)}")
            label = int(rest[0]) - 1
        else:  # test lists only have the path; its folder is the class
            parts = PurePosixPath(relative).parts
            if len(parts) < 2:
                raise UserError(f"{where}: {relative!r} is not <Class>/<clip> (no class folder)")
            folder = parts[0]
            if folder.lower() not in index:
                raise UserError(f"{where}: class folder {folder!r} is not in classInd.txt")
            label = index[folder.lower()]
        path = join_inside(videos_root, relative, where)
        samples.append(VideoSample(path, label, _ucf_group(path.name)))
    return VideoList(_check_missing(samples, listing, videos_root, skip_missing), class_names)


# --- HMDB51 ------------------------------------------------------------------------------------

_HMDB_IDS = {"train": "1", "test": "2"}


def parse_hmdb51(
    videos_root: Path | str,
    annotations_dir: Path | str,
    split: int = 1,
    subset: str = "train",
    *,
    skip_missing: bool = False,
) -> VideoList:
    """The HMDB51 train or test clips of one of the three official splits.

    Classes are the sorted names of the ``<class>_test_split<split>.txt`` files; the source movie
    (the file name before ``_<class>_``) is the clip's group.

    Args:
        videos_root: The folder holding one folder per class.
        annotations_dir: The folder with the split files (``testTrainMulti_7030_splits/``).
        split: 1, 2 or 3.
        subset: ``"train"`` (id 1) or ``"test"`` (id 2); id 0 clips are unused.
        skip_missing: Drop listed videos that do not exist instead of failing.

    Raises:
        UserError: no split files, a malformed line, a path leaving the root, or missing videos.
    """
    videos_root, annotations_dir = Path(videos_root), Path(annotations_dir)
    _check_subset(subset, ("train", "test"), "HMDB51")
    suffix = f"_test_split{split}.txt"
    split_files = sorted(annotations_dir.glob(f"*{suffix}")) if annotations_dir.is_dir() else []
    if not split_files:
        raise UserError(f"{annotations_dir}: no HMDB51 split files '*{suffix}' (split must be 1, 2 or 3)")
    class_names = [f.name[: -len(suffix)] for f in split_files]
    samples = []
    for label, (name, split_file) in enumerate(zip(class_names, split_files, strict=True)):
        for line_no, line in read_lines(split_file, "HMDB51 split file"):
            parts = line.split()
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise UserError(f"{split_file}:{line_no}: expected 'name.avi 0|1|2', got {line!r}")
            if parts[1] == _HMDB_IDS[subset]:
                path = join_inside(videos_root, f"{name}/{parts[0]}", f"{split_file}:{line_no}")
                movie = parts[0].split(f"_{name}_")[0] if f"_{name}_" in parts[0] else None
                samples.append(VideoSample(path, label, movie))
    return VideoList(_check_missing(samples, annotations_dir, videos_root, skip_missing), class_names)


# --- one folder per class ----------------------------------------------------------------------


def _is_clip(path: Path) -> bool:
    if path.name.startswith("."):
        return False
    return path.is_dir() or path.suffix.lower() in VIDEO_SUFFIXES


def _choose_val(sizes: dict[str, int], val_fraction: float, rng: random.Random) -> set[str]:
    """Whole groups (shuffled) go to validation until they hold ``val_fraction`` of the clips."""
    order = sorted(sizes)
    rng.shuffle(order)
    target = val_fraction * sum(sizes.values())
    val: set[str] = set()
    taken = 0
    for key in order[:-1]:  # the last group always trains
        if taken >= target:
            break
        val.add(key)
        taken += sizes[key]
    return val


def _split_groups(samples: list[VideoSample], val_fraction: float, seed: int) -> set[Path]:
    """Paths of validation clips. UCF-named groups are split across all classes at once, as the official
    splits do; clips without a group are split per class, so every class keeps training clips."""
    rng = random.Random(seed)
    strata: dict[str, dict[str, int]] = {}
    key_of: dict[Path, str] = {}
    for s in samples:
        stratum, key = ("*", s.group) if s.group else (str(s.label), str(s.path))
        key_of[s.path] = key
        strata.setdefault(stratum, {}).setdefault(key, 0)
        strata[stratum][key] += 1
    val_keys = set()
    for stratum in sorted(strata):
        val_keys |= _choose_val(strata[stratum], val_fraction, rng)
    return {path for path, key in key_of.items() if key in val_keys}


def carve_validation(videos: VideoList, val_fraction: float, seed: int) -> tuple[VideoList, VideoList]:
    """Split ``videos`` into ``(train, val)``: seeded, group-aware, about ``val_fraction`` for val.

    Clips sharing a group (UCF101 ``_gXX_``, an HMDB51 source movie) land on the same side, so
    validation never scores actors or scenes seen in training.

    Raises:
        UserError: ``val_fraction`` outside ``[0, 1)``.
    """
    if not 0 <= val_fraction < 1:
        raise UserError(f"data.val_fraction must be in [0, 1), got {val_fraction}")
    val = _split_groups(videos.samples, val_fraction, seed)
    return (
        VideoList([s for s in videos.samples if s.path not in val], videos.class_names),
        VideoList([s for s in videos.samples if s.path in val], videos.class_names),
    )


def _listing(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except OSError as exc:
        reason = (exc.strerror or type(exc).__name__).lower()
        raise UserError(f"{folder}: cannot list folder ({reason}); fix its permissions") from None


def parse_class_folders(
    root: Path | str, subset: str = "train", val_fraction: float = 0.2, seed: int = 0
) -> VideoList:
    """Clips stored as ``<root>/<class>/<video file or frame folder>``, split into train and val.

    The split is random but fixed by ``seed``, and group-aware: clips named UCF-style
    (``..._gXX_cYY``) are split by group so one group's clips never straddle train and val.

    Args:
        root: The folder holding one folder per class (classes are its sorted sub-folder names).
        subset: ``"train"``, ``"val"`` or ``"all"``.
        val_fraction: Share of clips for validation, in ``[0, 1)``.
        seed: Seed of the split.

    Raises:
        UserError: the root or its class folders hold no clips, or bad arguments.
    """
    root = Path(root)
    _check_subset(subset, ("train", "val", "all"), "class-folder")
    if not root.is_dir():
        raise UserError(f"{root}: missing dataset folder")
    class_names = sorted(p.name for p in _listing(root) if p.is_dir() and not p.name.startswith("."))
    samples = [
        VideoSample(clip, label, _ucf_group(clip.name))
        for label, name in enumerate(class_names)
        for clip in sorted(_listing(root / name))
        if _is_clip(clip)
    ]
    if not samples:
        raise UserError(f"{root}: no clips found; expected <root>/<class>/<video file or frame folder>")
    if subset == "all":
        return VideoList(samples, class_names)
    train, val = carve_validation(VideoList(samples, class_names), val_fraction, seed)
    return val if subset == "val" else train


# --- CSV lists ---------------------------------------------------------------------------------

_PATH_COLUMNS = ("path", "video", "file", "filename")
_LABEL_COLUMNS = ("label", "class", "class_name")
_SPLIT_COLUMNS = ("split", "subset")


def _csv_columns(header: list[str], csv_path: Path) -> tuple[int, int, int | None]:
    names = [h.strip().lower() for h in header]

    def find(options: tuple[str, ...]) -> int | None:
        return next((names.index(o) for o in options if o in names), None)

    path_col, label_col = find(_PATH_COLUMNS), find(_LABEL_COLUMNS)
    if path_col is None or label_col is None:
        raise UserError(f"{csv_path}: header {header} needs a 'path' and a 'label' column")
    return path_col, label_col, find(_SPLIT_COLUMNS)


def _class_order(labels: Iterable[str]) -> list[str]:
    unique = set(labels)
    if all(_is_number(label) for label in unique):
        return sorted(unique, key=int)
    return sorted(unique)


def parse_csv(
    videos_root: Path | str,
    csv_path: Path | str,
    *,
    subset: str | None = None,
    class_names: Sequence[str] | None = None,
    skip_missing: bool = False,
) -> VideoList:
    """Clips listed as ``path,label[,split]`` rows (Kinetics style); the header row is optional.

    Args:
        videos_root: Folder the listed paths are relative to.
        csv_path: The list. With a header, columns are found by name (``path``, ``label``, ``split``).
        subset: Keep only rows whose split column equals this (needs a split column).
        class_names: The label order to use, e.g. the training list's, so that train and val agree.
            By default the sorted label names of every row of the file (before ``subset`` filtering).
        skip_missing: Drop listed videos that do not exist instead of failing.

    Raises:
        UserError: a missing or malformed file, an unknown label, a path leaving the root, or missing
            videos.
    """
    videos_root, csv_path = Path(videos_root), Path(csv_path)
    if not csv_path.is_file():
        raise UserError(f"{csv_path}: missing CSV list")
    try:
        with csv_path.open(newline="", encoding="utf-8") as f:
            rows = [
                (n, row) for n, row in enumerate(csv.reader(f), start=1) if any(cell.strip() for cell in row)
            ]
    except UnicodeDecodeError as exc:
        raise UserError(f"{csv_path}: not UTF-8 text (byte {exc.start}); expected a CSV list") from None
    except csv.Error as exc:
        raise UserError(f"{csv_path}: malformed CSV ({exc})") from None
    except OSError as exc:
        raise UserError(f"{csv_path}: cannot read CSV list ({exc.strerror or exc})") from None
    if not rows:
        raise UserError(f"{csv_path}: empty CSV list")
    header = [cell.strip().lower() for cell in rows[0][1]]
    if any(name in header for name in _PATH_COLUMNS + _LABEL_COLUMNS):
        path_col, label_col, split_col = _csv_columns(rows[0][1], csv_path)
        rows = rows[1:]
    else:
        path_col, label_col, split_col = 0, 1, (2 if len(rows[0][1]) > 2 else None)
    if subset is not None and split_col is None:
        raise UserError(f"{csv_path}: subset {subset!r} requested but the list has no split column")
    needed = max(path_col, label_col, split_col or 0) + 1
    for line_no, row in rows:
        if len(row) < needed:
            raise UserError(f"{csv_path}:{line_no}: expected at least {needed} columns, got {row}")
    names = (
        list(class_names) if class_names is not None else _class_order(r[label_col].strip() for _, r in rows)
    )
    index = {name: i for i, name in enumerate(names)}
    samples = []
    for line_no, row in rows:
        if subset is not None and split_col is not None and row[split_col].strip().lower() != subset:
            continue
        label = row[label_col].strip()
        if label not in index:
            raise UserError(f"{csv_path}:{line_no}: label {label!r} is not one of the {len(names)} classes")
        path = join_inside(videos_root, row[path_col].strip(), f"{csv_path}:{line_no}")
        split = row[split_col].strip().lower() if split_col is not None else None
        samples.append(VideoSample(path, index[label], _ucf_group(path.name), split))
    return VideoList(_check_missing(samples, csv_path, videos_root, skip_missing), names)
