"""Small generated videos, frame folders and dataset layouts for the video tests.

Everything here is written with PyAV at test time (a few KB per clip), so the tests never need the
real datasets. Clips are tiny (e.g. 32x32, 8-16 frames) to keep the whole suite fast on 2 CPU cores.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image

from vision2seq.data.video import container
from vision2seq.data.video.frames import list_frame_files, load_frame, read_folder
from vision2seq.data.video.shared import VideoDecodeError
from vision2seq.synthetic import write_video  # the one video writer, re-exported for the tests


def moving_square_frames(
    num_frames: int,
    height: int,
    width: int,
    direction: str = "right",
    *,
    square: int | None = None,
    top: int | None = None,
) -> np.ndarray:
    """A white square sliding across a black frame, left-to-right or right-to-left.

    The two directions contain the same set of frames in opposite order, so a classifier can only
    tell them apart from temporal order.

    Args:
        num_frames: T.
        height: H.
        width: W.
        direction: ``"right"`` (moves left-to-right) or ``"left"``.
        square: Side of the square; a third of the smaller frame side by default.
        top: Row of the square's top edge (vary it for less uniform data); centred by default.

    Returns:
        (T, H, W, 3) uint8 frames.
    """
    if direction not in ("left", "right"):
        raise ValueError(f"direction must be 'left' or 'right', got {direction!r}")
    side = square or max(2, min(height, width) // 3)
    top = (height - side) // 2 if top is None else top
    xs = np.linspace(0, width - side, num_frames).round().astype(int)
    if direction == "left":
        xs = xs[::-1]
    frames = np.zeros((num_frames, height, width, 3), dtype=np.uint8)
    for frame, x in zip(frames, xs, strict=True):
        frame[top : top + side, x : x + side] = 255
    return frames


def index_coded_frames(num_frames: int, height: int = 32, width: int = 64) -> np.ndarray:
    """Frames that carry their own index as black/white vertical stripes (binary, most significant first).

    Read the index back with `frame_index_of`; coarse stripes survive lossy coding and any resize.
    """
    bits = _index_bits(num_frames)
    if width < 4 * bits:
        raise ValueError(f"{num_frames} frames need width >= {4 * bits}")
    frames = np.zeros((num_frames, height, width, 3), dtype=np.uint8)
    edges = np.linspace(0, width, bits + 1).round().astype(int)
    for i, frame in enumerate(frames):
        for b in range(bits):
            if (i >> (bits - 1 - b)) & 1:
                frame[:, edges[b] : edges[b + 1]] = 255
    return frames


def _index_bits(num_frames: int) -> int:
    return max(1, int(num_frames - 1).bit_length())


def frame_index_of(frame: np.ndarray, num_frames: int) -> int:
    """The index an `index_coded_frames` frame of a ``num_frames``-frame video carries."""
    bits = _index_bits(num_frames)
    frame = np.asarray(frame, dtype=np.float32)
    edges = np.linspace(0, frame.shape[1], bits + 1).round().astype(int)
    value = 0
    for b in range(bits):
        # The stripe's middle, away from edges that coding blurs.
        lo, hi = edges[b], edges[b + 1]
        middle = frame[:, lo + (hi - lo) // 4 : hi - (hi - lo) // 4]
        value = (value << 1) | int(middle.mean() > 127)
    return value


def write_frame_folder(
    folder: Path | str, frames: np.ndarray, pattern: str = "frame{:06d}.jpg", start: int = 1
) -> Path:
    """Save frames as images named ``pattern.format(i)`` (1-based by default, as extraction tools do)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames, start=start):
        Image.fromarray(np.asarray(frame, dtype=np.uint8)).save(folder / pattern.format(i), quality=95)
    return folder


# --- broken and unusual files -------------------------------------------------------------------


def make_empty_file(path: Path | str) -> Path:
    """A zero-byte ``.mp4``."""
    path = Path(path)
    path.write_bytes(b"")
    return path


def make_text_file(path: Path | str) -> Path:
    """A text file with a video suffix."""
    path = Path(path)
    path.write_text("this is a text file, not a video\n" * 20)
    return path


def make_audio_only(path: Path | str, codec: str = "aac", seconds: float = 0.5) -> Path:
    """A container with one audio stream (a sine tone) and no video stream."""
    path = Path(path)
    rate = 16000
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, layout="mono")
        samples_per_frame = 1024
        t = np.arange(int(seconds * rate)) / rate
        tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        fmt, scale = ("fltp", 1.0) if codec == "aac" else ("s16", 32767.0)
        for start in range(0, len(tone) - samples_per_frame + 1, samples_per_frame):
            chunk = tone[start : start + samples_per_frame] * scale
            data = chunk.astype(np.float32 if fmt == "fltp" else np.int16)[None]
            frame = av.AudioFrame.from_ndarray(data, format=fmt, layout="mono")
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def make_truncated(src: Path | str, dst: Path | str, keep_fraction: float = 0.5) -> Path:
    """Copy the first ``keep_fraction`` of ``src``'s bytes, as an interrupted download leaves it."""
    data = Path(src).read_bytes()
    dst = Path(dst)
    dst.write_bytes(data[: int(len(data) * keep_fraction)])
    return dst


def make_corrupt_middle(src: Path | str, dst: Path | str, num_bytes: int = 64, seed: int = 0) -> Path:
    """Copy ``src`` and overwrite ``num_bytes`` in the middle with random bytes (a damaged packet)."""
    data = bytearray(Path(src).read_bytes())
    middle = len(data) // 2
    data[middle : middle + num_bytes] = (
        np.random.default_rng(seed).integers(0, 256, num_bytes, np.uint8).tobytes()
    )
    dst = Path(dst)
    dst.write_bytes(bytes(data))
    return dst


def make_corrupt_packet(src: Path | str, dst: Path | str, packet_index: int, seed: int = 0) -> Path:
    """Remux ``src`` with packet ``packet_index`` of its video stream replaced by random bytes.

    Unlike overwriting file bytes (which decoders mostly conceal), this reliably makes one packet
    fail to decode while the container stays intact.
    """
    dst = Path(dst)
    with av.open(str(src)) as source, av.open(str(dst), "w") as out:
        in_stream = source.streams.video[0]
        out_stream = out.add_stream_from_template(in_stream)
        for i, packet in enumerate(p for p in source.demux(in_stream) if p.size):
            if i == packet_index:
                junk = av.Packet(
                    np.random.default_rng(seed).integers(0, 256, packet.size, np.uint8).tobytes()
                )
                junk.pts, junk.dts, junk.time_base = packet.pts, packet.dts, packet.time_base
                junk.is_keyframe = packet.is_keyframe
                packet = junk
            packet.stream = out_stream
            out.mux(packet)
    return dst


# --- dataset layouts ----------------------------------------------------------------------------


def _class_clip(directory: str, num_frames: int, size: tuple[int, int]) -> np.ndarray:
    return moving_square_frames(num_frames, *size, direction=directory)


def _write_class_videos(
    cache: dict[str, Path], key: str, dst: Path, num_frames: int, size: tuple[int, int]
) -> None:
    """Encode one clip per direction once and copy it, because encoding dominates layout creation."""
    if key not in cache:
        cache[key] = write_video(dst, _class_clip(key, num_frames, size))
    else:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cache[key], dst)


def make_ucf101_layout(
    root: Path | str,
    classes: Sequence[str] = ("MoveLeft", "MoveRight"),
    groups: int = 4,
    clips_per_group: int = 1,
    test_groups: Sequence[int] = (1,),
    *,
    num_frames: int = 8,
    size: tuple[int, int] = (32, 32),
) -> tuple[Path, Path]:
    """UCF101 as shipped: ``UCF-101/<Class>/v_<Class>_gXX_cYY.avi`` plus ``ucfTrainTestlist/``.

    Classes alternate square directions (even class index: right, odd: left). Groups listed in
    ``test_groups`` go to ``testlist01.txt``, the rest to ``trainlist01.txt``; the lists use CRLF line
    ends like the real ones.

    Returns:
        (videos_root, annotations_dir).
    """
    root = Path(root)
    videos, annotations = root / "UCF-101", root / "ucfTrainTestlist"
    annotations.mkdir(parents=True, exist_ok=True)
    cache: dict[str, Path] = {}
    train, test = [], []
    for label, name in enumerate(classes, start=1):
        direction = "right" if label % 2 else "left"
        for g in range(1, groups + 1):
            for c in range(1, clips_per_group + 1):
                rel = f"{name}/v_{name}_g{g:02d}_c{c:02d}.avi"
                _write_class_videos(cache, direction, videos / rel, num_frames, size)
                (test.append(rel) if g in test_groups else train.append(f"{rel} {label}"))
    class_ind = [f"{i} {name}" for i, name in enumerate(classes, start=1)]
    for file_name, lines in (
        ("classInd.txt", class_ind),
        ("trainlist01.txt", train),
        ("testlist01.txt", test),
    ):
        (annotations / file_name).write_bytes("".join(f"{line}\r\n" for line in lines).encode())
    return videos, annotations


def make_hmdb51_layout(
    root: Path | str,
    classes: Sequence[str] = ("wave", "walk"),
    videos_per_class: int = 4,
    *,
    num_frames: int = 8,
    size: tuple[int, int] = (32, 32),
) -> tuple[Path, Path]:
    """HMDB51 as shipped: ``hmdb51/<class>/<Movie>_<class>_..._N.avi`` plus ``testTrainMulti_7030_splits/``.

    Per class, video 0 is unused (id 0), video 1 is test (id 2) and the rest are train (id 1), for
    split 1 only.

    Returns:
        (videos_root, splits_dir).
    """
    root = Path(root)
    videos, splits = root / "hmdb51", root / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True, exist_ok=True)
    cache: dict[str, Path] = {}
    for k, name in enumerate(classes):
        direction = "right" if k % 2 == 0 else "left"
        lines = []
        for v in range(videos_per_class):
            file_name = f"Movie{v}_{name}_f_nm_np1_fr_med_{v}.avi"
            _write_class_videos(cache, direction, videos / name / file_name, num_frames, size)
            lines.append(f"{file_name} {0 if v == 0 else 2 if v == 1 else 1} ")
        (splits / f"{name}_test_split1.txt").write_text("\n".join(lines) + "\n")
    return videos, splits


def make_class_folder_layout(
    root: Path | str,
    classes: Sequence[str] = ("left", "right"),
    groups: int = 5,
    clips_per_group: int = 2,
    *,
    ucf_names: bool = True,
    frame_folders: bool = False,
    num_frames: int = 8,
    size: tuple[int, int] = (32, 32),
) -> Path:
    """``<root>/<class>/<clip>``: clips are ``.avi`` files or (``frame_folders``) directories of JPEGs.

    With ``ucf_names`` clips are named ``v_<class>_gXX_cYY`` so the split can be group-aware.
    """
    root = Path(root)
    cache: dict[str, Path] = {}
    for k, name in enumerate(classes):
        direction = "right" if k % 2 else "left"
        for g in range(1, groups + 1):
            for c in range(1, clips_per_group + 1):
                stem = f"v_{name}_g{g:02d}_c{c:02d}" if ucf_names else f"clip{g}{c}"
                if frame_folders:
                    write_frame_folder(root / name / stem, _class_clip(direction, num_frames, size))
                else:
                    _write_class_videos(cache, direction, root / name / f"{stem}.avi", num_frames, size)
    return root


# --- whole-video reads for the tests (the package samples frames; tests often want all of them) ------


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video; counts and durations are hints.

    Attributes:
        num_frames_hint: Claimed frame count (an estimate from duration x fps when none is stored).
        duration_s: Claimed duration in seconds.
        fps: Average frame rate.
        width: Width of the frames as returned (after rotation).
        height: Height of the frames as returned (after rotation).
        rotation: Counter-clockwise display rotation in degrees applied to the frames.
    """

    num_frames_hint: int | None
    duration_s: float | None
    fps: float | None
    width: int
    height: int
    rotation: int = 0


def read_video_frames(
    path: Path | str, indices: Sequence[int] | None = None, *, threads: int = 0
) -> list[np.ndarray]:
    """Every frame of a video file or frame folder (or those at ``indices``, past the end: the last)."""
    path = Path(path)
    if indices is not None and any(int(i) < 0 for i in indices):
        raise ValueError(f"frame indices must be non-negative, got {list(indices)}")
    if path.is_dir():
        return read_folder(path, lambda n: range(n) if indices is None else indices).frames
    wanted = None if indices is None else {int(i) for i in indices}
    kept, count = container._decode_file(path, wanted, threads)
    return container._convert(kept, range(count) if indices is None else indices, count)


def count_frames(path: Path | str, *, threads: int = 0) -> int:
    """The number of frames that really decode (a full decode without colour conversion)."""
    path = Path(path)
    if path.is_dir():
        return len(list_frame_files(path))
    return container._decode_file(path, set(), threads)[1]


def _rotation_of(matrix: np.ndarray | None) -> int:
    if matrix is None:
        return 0
    return int(round(np.degrees(np.arctan2(-matrix[1], matrix[0])) / 90) * 90) % 360


def probe_video(path: Path | str) -> VideoInfo:
    """A video's container metadata, and its displayed size from the first frame."""
    path = Path(path)
    if path.is_dir():
        files = list_frame_files(path)
        height, width = load_frame(files[0]).shape[:2]
        return VideoInfo(len(files), None, None, width, height)
    with container._open_video(path, threads=1) as (box, stream):
        first = next(container._iter_frames(box, stream, path), None)
        if first is None:
            raise VideoDecodeError(path, "no decodable frames (truncated?)")
        rotation = _rotation_of(container._display_matrix(first))
        width, height = (first.height, first.width) if rotation in (90, 270) else (first.width, first.height)
        duration = None
        if stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif box.duration:
            duration = box.duration / av.time_base
        fps = float(stream.average_rate) if stream.average_rate else None
        return VideoInfo(container._frame_count_hint(box, stream), duration, fps, width, height, rotation)
