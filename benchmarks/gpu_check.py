"""One-command GPU check: ``python benchmarks/run.py --gpu`` (or ``python -m benchmarks --gpu``).

On a machine with CUDA it measures, and writes to one JSON (``benchmarks/gpu-results.json``):

* ``amp``: the ``cuda_amp`` figures: ResNet-50 encoder images/s and a full fine-tuning step/s under bf16
  autocast + ``channels_last`` vs fp32 (``bench_cuda_amp.measure``);
* ``ddp``: data-parallel training on every GPU: ``mp.spawn`` starts one process per GPU, each joins the
  group through the package's own ``distributed.setup`` (NCCL), wraps the whole captioning model
  (ResNet-50 grid, ``trainable_from: all``, attention decoder) in ``DistributedDataParallel`` and runs
  bf16 training steps of ``batch`` images per process; samples/s over all GPUs, and the scaling
  efficiency against the same run on one GPU (``rate_N / (N * rate_1)``);
* ``caption``: ``Captioner.caption_files`` on photo-sized JPEGs (2 decoding workers, batches of 32) on
  the GPU, images/s end to end, and as a fraction of ``caption_tensors`` on pre-decoded batches;
* ``classify``: ``VideoClassifier.classify`` on generated MPEG-4 clips on the GPU, clips/s end to end.

``--gpu --quick`` runs the same code on the CPU at tiny sizes (2 gloo processes instead of NCCL, fp32
where the CPU has no bf16) so the test suite keeps it working; its numbers mean nothing. Without CUDA
and without ``--quick`` the check stops with exit status 2 and says why.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import Context, machine_info

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "gpu-results.json"


@dataclass(frozen=True)
class Sizes:
    encoder: str
    image_size: int | None
    vocab: int
    embed: int
    hidden: int
    attention: int
    ddp_batch: int  # images per process per step
    caption_len: int
    ddp_steps: int
    photos: int
    photo_size: tuple[int, int]
    clips: int
    clip_frames: int
    beam: int


FULL = Sizes("resnet50", None, 5000, 256, 512, 256, 32, 17, 20, 512, (500, 375), 16, 16, beam=3)
QUICK = Sizes("resnet18", 64, 100, 32, 64, 32, 2, 6, 2, 8, (96, 72), 2, 4, beam=3)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _caption_model(s: Sizes):
    """The captioning config, vocabulary, task and a fresh model (random weights), fine-tuned whole."""
    from vision2seq.config import CaptioningConfig
    from vision2seq.data.vocab import SPECIALS, Vocabulary
    from vision2seq.tasks.captioning import CaptioningTask, build_model

    config = CaptioningConfig()
    enc, dec = config.model.encoder, config.model.decoder
    enc.name, enc.weights, enc.output, enc.image_size, enc.trainable_from = (
        s.encoder,
        None,
        "grid",
        s.image_size,
        "all",
    )
    dec.kind, dec.embed_dim, dec.hidden_dim, dec.attention_dim = "attention", s.embed, s.hidden, s.attention
    vocab = Vocabulary([*SPECIALS, *(f"w{i}" for i in range(s.vocab - len(SPECIALS)))])
    torch.manual_seed(0)
    return config, vocab, CaptioningTask(config, vocab), build_model(config, vocab)


def _ddp_worker(rank: int, world: int, port: int, device_kind: str, s: Sizes, out: str) -> None:
    """One process of the DDP measurement (``mp.spawn`` target): ``ddp_steps`` timed training steps."""
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    from torch.nn.parallel import DistributedDataParallel

    from vision2seq.engine import distributed
    from vision2seq.engine.loop import autocast

    if device_kind == "cpu":
        torch.set_num_threads(1)  # the processes share the cores
    dist_ctx, device = distributed.setup(device_kind)
    if not torch.distributed.is_initialized():  # setup() leaves a 1-process run ungrouped; DDP needs one
        torch.distributed.init_process_group(
            "nccl" if device.type == "cuda" else "gloo", rank=0, world_size=1
        )
    try:
        _, vocab, task, model = _caption_model(s)
        model = model.to(device).train()
        if device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        ddp = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        size = model.encoder.preprocessing.crop_size
        gen = torch.Generator().manual_seed(rank)
        images = torch.randn(s.ddp_batch, 3, size, size, generator=gen).to(device)
        if device.type == "cuda":
            images = images.contiguous(memory_format=torch.channels_last)
        captions = torch.randint(4, len(vocab), (s.ddp_batch, s.caption_len), generator=gen).to(device)
        captions[:, 0] = vocab.bos_id
        batch = {"images": images, "captions": captions}
        optimizer = torch.optim.Adam(ddp.parameters(), lr=1e-5)

        def step() -> None:
            with autocast(device, "bf16"):  # the engine's context: bf16 on CUDA, fp32 on the CPU
                loss = task.training_step(ddp, batch)["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        step()  # warm-up: cuDNN algorithms, DDP buckets, Adam state
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        torch.distributed.barrier()
        start = time.perf_counter()
        for _ in range(s.ddp_steps):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = max(dist_ctx.all_gather_object(time.perf_counter() - start))  # the slowest rank's
        if dist_ctx.is_main:
            Path(out).write_text(json.dumps({"seconds": seconds, "device": str(device)}))
    finally:
        distributed.teardown()


def measure_ddp(ctx: Context, s: Sizes, device_kind: str, world: int) -> dict[str, Any]:
    """Samples/s of ``world`` DDP processes, one per GPU (gloo CPU processes in quick mode)."""
    import torch.multiprocessing as mp

    backend = "nccl" if device_kind == "cuda" else "gloo"
    if device_kind == "cuda":
        torch.cuda.empty_cache()  # the amp part's cached blocks on GPU 0 would crowd rank 0
    runs: dict[str, Any] = {}
    for n in sorted({1, world}):
        out = ctx.workdir / f"ddp_{n}.json"
        ctx.log(f"DDP: {n} process(es), {backend}, {s.ddp_steps} steps of {s.ddp_batch} images each")
        mp.spawn(_ddp_worker, args=(n, _free_port(), device_kind, s, str(out)), nprocs=n, join=True)
        seconds = json.loads(out.read_text())["seconds"]
        runs[str(n)] = {
            "processes": n,
            "seconds": round(seconds, 4),
            "samples_per_s": round(n * s.ddp_batch * s.ddp_steps / seconds, 2),
        }
    result: dict[str, Any] = {"backend": backend, "batch_per_process": s.ddp_batch, "runs": runs}
    if world > 1:
        one, many = runs["1"]["samples_per_s"], runs[str(world)]["samples_per_s"]
        result["scaling_efficiency"] = round(many / (world * one), 3)
    else:
        result["scaling_efficiency"] = None
        result["note"] = "one device: no scaling to measure"
    return result


def measure_caption(ctx: Context, s: Sizes, device: torch.device) -> dict[str, Any]:
    """``Captioner.caption_files`` end to end on ``device`` vs ``caption_tensors`` on pre-decoded images."""
    from benchmarks.bench_caption_cli import BATCH_SIZE, write_photos
    from vision2seq.config import config_to_dict
    from vision2seq.data.images import load_image
    from vision2seq.engine.checkpoint import save_checkpoint
    from vision2seq.inference.captioner import Captioner

    config, vocab, _, model = _caption_model(s)
    config.generation.beam_size = s.beam
    checkpoint = ctx.workdir / "caption.pt"
    payload = {"config": config_to_dict(config), "extras": {"vocab": vocab.to_list()}}
    save_checkpoint(checkpoint, {"task": "captioning", **payload, "model": model.state_dict()})
    paths = write_photos(ctx.workdir / "photos", s.photos, *s.photo_size)
    captioner = Captioner.from_checkpoint(checkpoint, device=device.type)
    pixels = torch.stack([captioner.transform(load_image(p)) for p in paths])
    captioner.caption_tensors(pixels[:BATCH_SIZE])  # warm-up

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    start = time.perf_counter()
    for batch in pixels.split(BATCH_SIZE):
        captioner.caption_tensors(batch)
    sync()
    in_process = time.perf_counter() - start
    start = time.perf_counter()
    results = list(captioner.caption_files(paths, batch_size=BATCH_SIZE, num_workers=2, progress=False))
    sync()
    end_to_end = time.perf_counter() - start
    assert len(results) == len(paths) and not any(r.error for r in results)
    return {
        "images": len(paths),
        "beam_size": s.beam,
        "end_to_end_images_per_s": round(len(paths) / end_to_end, 2),
        "in_process_images_per_s": round(len(paths) / in_process, 2),
        "end_to_end_fraction": round(in_process / end_to_end, 3),
    }


def measure_classify(ctx: Context, s: Sizes, device: torch.device) -> dict[str, Any]:
    """``VideoClassifier.classify`` end to end on generated clips, clips/s."""
    from benchmarks import bench_video_pipeline
    from vision2seq.config import VideoConfig, config_to_dict
    from vision2seq.engine.checkpoint import save_checkpoint
    from vision2seq.inference.classifier import VideoClassifier
    from vision2seq.tasks.video_classification import VideoClassificationTask, build_model

    config = VideoConfig()
    enc = config.model.encoder
    enc.name, enc.weights, enc.image_size = s.encoder, None, s.image_size
    config.data.num_frames = s.clip_frames
    classes = [f"class{i}" for i in range(101)]
    torch.manual_seed(0)
    model = build_model(config, len(classes))
    checkpoint = ctx.workdir / "classify.pt"
    save_checkpoint(
        checkpoint,
        {
            "task": "video_classification",
            "config": config_to_dict(config),
            "extras": {VideoClassificationTask.extras: classes},
            "model": model.state_dict(),
        },
    )
    video_sizes = bench_video_pipeline.QUICK if ctx.quick else bench_video_pipeline.FULL
    clips_dir = ctx.workdir / "clips"
    clips_dir.mkdir(parents=True, exist_ok=True)
    paths = bench_video_pipeline.make_clips(clips_dir, video_sizes)[: s.clips]
    while len(paths) < s.clips:  # repeat the files to reach the wanted count
        paths = paths + paths[: s.clips - len(paths)]
    classifier = VideoClassifier.from_checkpoint(checkpoint, device=device.type)
    classifier.classify(paths[:1], progress=False)  # warm-up
    start = time.perf_counter()
    predictions = classifier.classify(paths, progress=False)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    assert not any(p.error for p in predictions), [p.error for p in predictions if p.error]
    return {
        "clips": len(paths),
        "frames_per_clip": s.clip_frames,
        "end_to_end_clips_per_s": round(len(paths) / seconds, 2),
    }


def _cpu_has_bf16() -> bool:
    check = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    return bool(check and check())


def run_gpu_check(quick: bool, workdir: Path) -> dict[str, Any]:
    """All measurements of the GPU check; the JSON document. Raises RuntimeError without CUDA (full)."""
    from benchmarks import bench_cuda_amp

    cuda = torch.cuda.is_available()
    if not cuda and not quick:
        raise RuntimeError("no CUDA device: --gpu needs one (--gpu --quick runs the same code on the CPU)")
    device = torch.device("cuda" if cuda else "cpu")
    if not cuda:
        torch.set_num_threads(1)  # a smoke run on a shared CPU; timings are not the point
    s = QUICK if quick else FULL
    world = torch.cuda.device_count() if cuda else 2
    started = time.perf_counter()
    sections: dict[str, Any] = {}
    errors: dict[str, str] = {}
    amp_dtype = torch.bfloat16 if cuda or _cpu_has_bf16() else None
    amp_sizes = bench_cuda_amp.QUICK if quick else bench_cuda_amp.FULL
    steps = {
        "amp": lambda ctx: [f.to_json() for f in bench_cuda_amp.measure(ctx, device, amp_sizes, amp_dtype)],
        "ddp": lambda ctx: measure_ddp(ctx, s, device.type, world),
        "caption": lambda ctx: measure_caption(ctx, s, device),
        "classify": lambda ctx: measure_classify(ctx, s, device),
    }
    for name, fn in steps.items():
        print(f"[gpu check: {name}]", file=sys.stderr, flush=True)
        ctx = Context(quick=quick, workdir=workdir / name)
        ctx.workdir.mkdir(parents=True, exist_ok=True)
        try:
            sections[name] = fn(ctx)
        except Exception as exc:  # one failure must not hide the other measurements
            import traceback

            traceback.print_exc()
            errors[name] = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return {
        "suite": "vision2seq GPU check",
        "quick": quick,
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "devices": world if cuda else 0,
        "amp_dtype": str(amp_dtype).replace("torch.", "") if amp_dtype is not None else "float32",
        "sizes": asdict(s),
        "seconds": round(time.perf_counter() - started, 1),
        "machine": machine_info(),
        **sections,
        "errors": errors,
    }


def summary(result: dict[str, Any]) -> str:
    """A few lines naming the headline numbers of a GPU-check result."""
    lines = [f"vision2seq GPU check{' (quick)' if result['quick'] else ''} on {result['device']}:"]
    for figure in result.get("amp", []):
        lines.append(f"  {figure['key']}: {figure['value']}x")
    if "ddp" in result:
        d = result["ddp"]
        rates = ", ".join(f"{k} proc: {v['samples_per_s']} samples/s" for k, v in d["runs"].items())
        lines.append(f"  DDP ({d['backend']}): {rates}; scaling efficiency {d['scaling_efficiency']}")
    if "caption" in result:
        c = result["caption"]
        lines.append(
            f"  caption: {c['end_to_end_images_per_s']} images/s end to end "
            f"({c['end_to_end_fraction']} of in-process {c['in_process_images_per_s']})"
        )
    if "classify" in result:
        lines.append(f"  classify: {result['classify']['end_to_end_clips_per_s']} clips/s end to end")
    for name, error in result["errors"].items():
        lines.append(f"  {name} FAILED: {error}")
    return "\n".join(lines)
