"""Decode video files (containers) with PyAV: the sampled frames of a clip, or every frame in order.

A video's frame count and duration in its container are hints, not truths: real UCF101/HMDB51 .avi
files claim one frame more than decodes, truncated downloads claim the full length, and some containers
claim nothing. Frame indices here always mean "the i-th frame the decoder outputs", and samplers are
applied to the number of frames that really decode.

Decode strategy (`read_file`):

* **Short videos** (the common case: UCF101 averages ~7 s, Kinetics clips are 10 s) are decoded
  sequentially in one pass. Before decoding, the sampler is evaluated for the claimed count and its
  near neighbours (claim - 2 ... claim + 1); only frames those candidate index sets use are kept, still
  in YUV, and once decoding ends the set for the true count is converted to RGB, so memory holds the
  sampled frames only, whatever the video's length. Files whose true count is far from the claim
  (truncated, corrupt, no claim) get a second pass with the indices for the true count: correct, at
  twice the cost, for broken files only.
* **Long videos** (claimed count >= ``sparse_min_frames``) are sampled from the claimed count and each
  wanted frame is reached by seeking to the keyframe before it (using the container index when there
  is one) instead of decoding everything; indices map to time ``i / fps``. Requests past the real end
  return the last frame that decodes. Cost scales with the clip length times the keyframe interval
  instead of with the video length. This trusts the claimed count and the timestamps, which some
  files get wrong (HMDB51's DivX .avi: count one too high, timestamps shifted by a frame), so it is
  not used for short videos, where the sequential decode is cheap anyway.

Damaged input is decoded as far as possible: a packet that fails to decode is skipped, a container that
breaks off keeps the frames before the break, and only a video with no decodable frame at all is an
error. Rotation metadata (the display matrix phones write) is applied, so frames come out upright.
Frames larger than `vision2seq.data.video.shared.MAX_FRAME_PIXELS` are refused from the stream header
and again on each decoded frame, before any colour conversion.

Untrusted files: only the containers of ``VIDEO_SUFFIXES`` are opened (FFmpeg never probes its other
demuxers, such as HLS playlists that would open the files or URLs they list), and only local files.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from vision2seq.data.video import shared as video_types
from vision2seq.data.video.shared import IndexSampler, SampledFrames, VideoDecodeError, check_frame_size

# FFmpeg demuxers of the containers of VIDEO_SUFFIXES; no other is ever probed, whatever a file is named.
# Of FFmpeg's 400-odd demuxers most are for images, subtitles, playlists (HLS would open the files or
# URLs a playlist lists) and rarely exercised formats; and only local files may be opened, never a
# network protocol.
DEMUXERS = "avi,mov,mp4,m4v,matroska,webm,mpeg,mpegvideo,mpegts,flv,asf,ogg"
_CONTAINER_OPTIONS = {"format_whitelist": DEMUXERS, "protocol_whitelist": "file"}
# Claimed length from which `read_file` seeks instead of decoding everything (60 s at 30 fps).
DEFAULT_SPARSE_MIN_FRAMES = 1800
# Candidate true counts evaluated before decoding, relative to the claimed count.
_HINT_OFFSETS = (-2, -1, 0, 1)
# Without a container index, seek only when the next wanted frame is this far ahead.
_SEEK_GAP_S = 2.0

_local = threading.local()  # per-thread colour converter (swscale contexts are not thread-safe)


# --- rotation ----------------------------------------------------------------------------------


def apply_display_matrix(image: np.ndarray, matrix: Sequence[int] | np.ndarray) -> np.ndarray:
    """Rotate/flip ``image`` (H, W, C) as FFmpeg's 3x3 display matrix says it should be shown.

    The matrix maps source ``(x, y)`` to display ``(a*x + c*y, b*x + d*y)`` with ``a, b, c, d`` its
    entries 0, 1, 3, 4 (16.16 fixed point). Only the quarter-turn rotations and flips real files use
    are supported; other angles are rounded to the nearest quarter turn.
    """
    m = np.asarray(matrix, dtype=np.float64).reshape(-1)
    a, b, c, d = m[0], m[1], m[3], m[4]
    if abs(a) + abs(d) >= abs(b) + abs(c):  # no transpose: x' = sx * x, y' = sy * y
        sx, sy = np.sign(a) or 1.0, np.sign(d) or 1.0
        out = image
    else:  # transpose: x' = sx * y, y' = sy * x
        sx, sy = np.sign(c) or 1.0, np.sign(b) or 1.0
        out = np.swapaxes(image, 0, 1)
    if sy < 0:
        out = out[::-1]
    if sx < 0:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


def _display_matrix(frame: av.VideoFrame) -> np.ndarray | None:
    side = frame.side_data.get(av.sidedata.sidedata.Type.DISPLAYMATRIX)
    if side is None or side.buffer_size < 36:
        return None
    return np.frombuffer(bytes(side), dtype=np.int32, count=9)


def _reformatter() -> VideoReformatter:
    # A reused converter keeps its swscale context (3x faster than one per frame). One per thread and
    # per process: a context inherited by a forked DataLoader worker must not be reused.
    pid = os.getpid()
    if getattr(_local, "pid", None) != pid:
        _local.pid, _local.reformatter = pid, VideoReformatter()
    return _local.reformatter


def _to_rgb(frame: av.VideoFrame) -> np.ndarray:
    # threads=1: swscale's own thread pool costs more than it saves on video-sized frames, and its
    # threads do not survive fork().
    image = _reformatter().reformat(frame, format="rgb24", threads=1).to_ndarray()
    matrix = _display_matrix(frame)
    return image if matrix is None else apply_display_matrix(image, matrix)


# --- containers --------------------------------------------------------------------------------


@contextmanager
def _open_video(path: Path, threads: int) -> Iterator[tuple[av.container.InputContainer, av.VideoStream]]:
    """Open ``path`` and its first video stream, turning every failure into a one-line error."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise VideoDecodeError(path, "missing file") from None
    except OSError as err:  # e.g. a parent folder without search permission
        raise VideoDecodeError(path, (err.strerror or "cannot access").lower()) from None
    if size == 0:
        raise VideoDecodeError(path, "empty file")
    try:
        container = av.open(str(path), metadata_errors="ignore", container_options=_CONTAINER_OPTIONS)
    except PermissionError as err:
        raise VideoDecodeError(path, "permission denied") from err
    except (av.FFmpegError, UnicodeDecodeError, OSError) as err:
        raise VideoDecodeError(
            path,
            "not a video file / cannot be decoded (unsupported container, truncated or corrupt?): "
            + _ffmpeg_reason(err),
        ) from err
    try:
        # Cover art in audio files is a one-picture "video" stream: not a video.
        streams = [
            s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic
        ]
        if not streams:
            raise VideoDecodeError(path, "no video stream (audio-only?)")
        # A damaged header can leave a stream whose codec FFmpeg does not know (no decoder at all).
        decodable = [s for s in streams if s.codec_context is not None]
        if not decodable:
            raise VideoDecodeError(path, "the video stream's codec is unknown (corrupt header?)")
        stream = decodable[0]
        ctx = stream.codec_context
        check_frame_size(path, ctx.width or 0, ctx.height or 0, video_types.MAX_FRAME_PIXELS)
        stream.thread_type = "AUTO"  # frame + slice threads: ~1.2-1.5x on H.264
        stream.codec_context.thread_count = threads
        yield container, stream
    finally:
        container.close()


def _ffmpeg_reason(err: BaseException) -> str:
    """FFmpeg's short reason for an error (``Invalid data found when processing input``), one line."""
    reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
    return " ".join(str(reason).split())


def _iter_frames(
    container: av.container.InputContainer, stream: av.VideoStream, path: Path
) -> Iterator[av.VideoFrame]:
    """Frames in output order, each checked against the size limit (a header may understate it);
    corrupt packets are skipped and a broken container ends the video."""
    limit = video_types.MAX_FRAME_PIXELS
    for frame in _decoded(container, stream):
        check_frame_size(path, frame.width, frame.height, limit)
        yield frame


def _decoded(container: av.container.InputContainer, stream: av.VideoStream) -> Iterator[av.VideoFrame]:
    try:
        for packet in container.demux(stream):
            try:
                yield from packet.decode()
            except av.FFmpegError:
                continue  # decoders resynchronise at the next keyframe
    except av.FFmpegError:
        # The demuxer gave up (truncated/damaged file): drain frames still buffered in the decoder.
        with suppress(av.FFmpegError):
            yield from stream.codec_context.decode(None)


def _frame_count_hint(container: av.container.InputContainer, stream: av.VideoStream) -> int | None:
    """The container's frame count, else duration x frame rate (Matroska stores no count)."""
    if stream.frames:
        return int(stream.frames)
    fps = stream.average_rate or stream.guessed_rate
    if not fps:
        return None
    if stream.duration and stream.time_base:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration:
        seconds = container.duration / av.time_base
    else:
        return None
    return max(1, round(seconds * float(fps)))


def _decode_kept(
    path: Path, container: av.container.InputContainer, stream: av.VideoStream, wanted: set[int] | None
) -> tuple[dict[int, av.VideoFrame], int]:
    """Decode the whole video, keeping (unconverted) the frames in ``wanted`` (all if None) and the last."""
    kept: dict[int, av.VideoFrame] = {}
    count, last = 0, None
    for count, frame in enumerate(_iter_frames(container, stream, path), start=1):
        if wanted is None or count - 1 in wanted:
            kept[count - 1] = frame
        last = frame
    if last is None:
        raise VideoDecodeError(path, "no decodable frames (truncated?)")
    kept[count - 1] = last
    return kept, count


def _decode_file(path: Path, wanted: set[int] | None, threads: int) -> tuple[dict[int, av.VideoFrame], int]:
    with _open_video(path, threads) as (container, stream):
        return _decode_kept(path, container, stream, wanted)


def _convert(kept: dict[int, av.VideoFrame], indices: Sequence[int], count: int) -> list[np.ndarray]:
    # Indices past the true end get the last frame; each distinct frame is converted once.
    rgb: dict[int, np.ndarray] = {}
    out = []
    for i in indices:
        i = min(int(i), count - 1)
        if i not in rgb:
            rgb[i] = _to_rgb(kept[i])
        out.append(rgb[i])
    return out


# --- sparse decoding of long videos ------------------------------------------------------------


def _keyframe_pts(stream: av.VideoStream) -> np.ndarray | None:
    # The container index (avi/mp4 always, mkv only once cues are read) tells where seeking lands.
    try:
        stamps = [entry.timestamp for entry in stream.index_entries if entry.is_keyframe]
    except (AttributeError, av.FFmpegError):
        return None
    return np.asarray(sorted(stamps)) if len(stamps) >= 2 else None


def _should_seek(target: int, current: av.VideoFrame | None, keyframes: np.ndarray | None, gap: int) -> bool:
    """Seek only when it skips frames: the keyframe before ``target`` lies after the decode position."""
    if current is None:
        return True
    if keyframes is None:
        return target - current.pts > gap
    before = keyframes[max(np.searchsorted(keyframes, target, side="right") - 1, 0)]
    return before > current.pts


def _decode_sparse(
    path: Path,
    container: av.container.InputContainer,
    stream: av.VideoStream,
    wanted: list[int],
    fps: float,
) -> dict[int, av.VideoFrame] | None:
    """Reach each wanted index (as time ``i / fps``) by seeking; None when timestamps are unusable."""
    time_base = float(stream.time_base)
    start = stream.start_time or 0
    keyframes = _keyframe_pts(stream)
    half_frame = 0.5 / (fps * time_base)
    frames: Iterator[av.VideoFrame] = iter(())
    current: av.VideoFrame | None = None
    kept: dict[int, av.VideoFrame] = {}
    for index in wanted:
        target = start + index / (fps * time_base)
        if _should_seek(int(target), current, keyframes, int(_SEEK_GAP_S / time_base)):
            container.seek(int(target), stream=stream, backward=True)
            frames, current = _iter_frames(container, stream, path), None
        while current is None or current.pts < target - half_frame:
            frame = next(frames, None)
            if frame is None:
                break  # past the real end: keep the last frame that decoded
            if frame.pts is None:
                return None
            current = frame
        if current is None:
            return None
        kept[index] = current
    return kept


def _read_sparse(
    path: Path,
    container: av.container.InputContainer,
    stream: av.VideoStream,
    sampler: IndexSampler,
    hint: int,
) -> SampledFrames | None:
    fps = float(stream.average_rate or stream.guessed_rate or 0)
    if fps <= 0 or not stream.time_base:
        return None
    indices = [int(i) for i in sampler(hint)]
    try:
        kept = _decode_sparse(path, container, stream, sorted(set(indices)), fps)
    except av.FFmpegError:
        kept = None  # unseekable file: the caller decodes it sequentially
    if kept is None:
        return None
    return SampledFrames(_convert(kept, indices, hint), indices, hint)


def _read_sequential(
    path: Path,
    container: av.container.InputContainer,
    stream: av.VideoStream,
    sampler: IndexSampler,
    hint: int | None,
    threads: int,
) -> SampledFrames:
    candidates: dict[int, list[int]] = {}
    if hint is not None:
        for n in sorted({max(1, hint + offset) for offset in _HINT_OFFSETS}):
            candidates[n] = [int(i) for i in sampler(n)]
    wanted = {i for indices in candidates.values() for i in indices}
    kept, count = _decode_kept(path, container, stream, wanted)
    indices = candidates[count] if count in candidates else [int(i) for i in sampler(count)]
    if not all(i in kept for i in indices):
        # The claim was far off (truncated/corrupt/unknown length): decode again for the right frames.
        kept, second_count = _decode_file(path, set(indices), threads)
        count = min(count, second_count)
    return SampledFrames(_convert(kept, indices, count), indices, count)


def read_file(
    path: Path, sampler: IndexSampler, sparse_min_frames: int | None, threads: int
) -> SampledFrames:
    """The frames ``sampler`` picks from a video file (see the module doc for the strategy)."""
    with _open_video(path, threads) as (container, stream):
        hint = _frame_count_hint(container, stream)
        if sparse_min_frames is None or hint is None or hint < sparse_min_frames:
            return _read_sequential(path, container, stream, sampler, hint, threads)
        sampled = _read_sparse(path, container, stream, sampler, hint)
    if sampled is not None:
        return sampled
    with _open_video(path, threads) as (container, stream):  # seeking failed: a fresh sequential decode
        return _read_sequential(path, container, stream, sampler, hint, threads)


def iter_file(path: Path, step: int, threads: int) -> Iterator[tuple[int, float, np.ndarray]]:
    """``(index, time in seconds, RGB frame)`` for every ``step``-th frame, converted as decoded."""
    with _open_video(path, threads) as (container, stream):
        base = float(stream.time_base) if stream.time_base else None
        index = -1
        for index, frame in enumerate(_iter_frames(container, stream, path)):
            if index % step == 0:
                t = frame.pts * base if frame.pts is not None and base else (frame.time or 0.0)
                yield index, float(t), _to_rgb(frame)
        if index < 0:
            raise VideoDecodeError(path, "no decodable frames (truncated?)")
