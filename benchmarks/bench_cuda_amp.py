"""Figure 6 (CUDA only): bf16 autocast + channels_last vs fp32, for the encoder and a full training step.

* encoder: ResNet-50 (random init) at 224 px, pooled, batch 64, under ``inference_mode``; candidate =
  the same weights converted to ``channels_last``, input in ``channels_last``, under
  ``torch.autocast("cuda", torch.bfloat16)``; baseline = fp32 NCHW. Figure = images/s ratio.
* training step: the whole model fine-tuned (``trainable_from: all``): ResNet-50 grid encoder +
  Show-Attend-and-Tell decoder (embed 256, hidden 512, attention 256, vocabulary 5,000), batch 32,
  captions of 16 tokens, ``CaptioningTask.training_step`` + backward + Adam; candidate under the
  engine's own ``autocast(device, "bf16")`` with the model and images in ``channels_last``; baseline
  fp32. Figure = steps/s ratio (informational: the target is for the encoder).

PyTorch defaults are kept on both sides (cuDNN may use TF32 for fp32 convolutions; no
``cudnn.benchmark``), as the package leaves them. Without CUDA both figures are skipped ("no CUDA").
"""

from __future__ import annotations

import copy
from contextlib import nullcontext
from dataclasses import dataclass

import torch

from benchmarks.common import Context, Figure, interleave


@dataclass(frozen=True)
class Sizes:
    encoder: str
    image_size: int | None
    encoder_batch: int
    encoder_iters: int
    train_batch: int
    train_iters: int
    vocab: int
    caption_len: int
    rounds: int


FULL = Sizes("resnet50", None, 64, 10, 32, 5, 5000, 17, rounds=3)
QUICK = Sizes("resnet18", 64, 4, 1, 2, 1, 100, 6, rounds=1)
SKIPPED = ("cuda_bf16_encoder_speedup", "cuda_bf16_train_step_speedup")


def run(ctx: Context) -> list[Figure]:
    if not torch.cuda.is_available():
        return [
            Figure(key, f"{key} (CUDA only)", None, 2.0 if "encoder" in key else None, skipped="no CUDA")
            for key in SKIPPED
        ]
    return measure(ctx, torch.device("cuda"), QUICK if ctx.quick else FULL)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(
    ctx: Context, device: torch.device, s: Sizes, amp_dtype: torch.dtype | None = torch.bfloat16
) -> list[Figure]:
    """Both figures on ``device`` (runs on the CPU too, with CPU autocast, for checking the code).

    ``amp_dtype`` None leaves the candidate in fp32 (channels_last only), for CPUs without bf16.
    """
    from vision2seq.config import CaptioningConfig
    from vision2seq.data.vocab import SPECIALS, Vocabulary
    from vision2seq.engine.loop import autocast
    from vision2seq.models.encoder import ImageEncoder
    from vision2seq.tasks.captioning import CaptioningTask, build_model

    def amp():
        if amp_dtype is None:
            return nullcontext()
        if device.type == "cuda":
            return autocast(device, "bf16")  # the engine's own context (a no-op off CUDA)
        return torch.autocast(device.type, dtype=amp_dtype)

    torch.manual_seed(0)
    fp32 = ImageEncoder(s.encoder, None, "pooled", image_size=s.image_size).to(device).eval()
    fast = copy.deepcopy(fp32).to(memory_format=torch.channels_last)
    size = fp32.preprocessing.crop_size
    images = torch.randn(s.encoder_batch, 3, size, size, device=device)
    images_cl = images.contiguous(memory_format=torch.channels_last)

    def encode(model: torch.nn.Module, x: torch.Tensor, context) -> None:
        with torch.inference_mode(), context():
            for _ in range(s.encoder_iters):
                model(x)
        _sync(device)

    sides = {
        "fp32": lambda: encode(fp32, images, nullcontext),
        "bf16_cl": lambda: encode(fast, images_cl, amp),
    }
    for fn in sides.values():
        fn()  # warm-up (cuDNN algorithm selection, autocast caches)
    ctx.log(f"encoder: timing {s.rounds} interleaved rounds on {device}")
    enc_t = interleave(s.rounds, sides)

    config = CaptioningConfig()
    enc, dec = config.model.encoder, config.model.decoder
    enc.name, enc.weights, enc.output, enc.image_size, enc.trainable_from = (
        s.encoder,
        None,
        "grid",
        s.image_size,
        "all",
    )
    dec.kind = "attention"
    vocab = Vocabulary([*SPECIALS, *(f"w{i}" for i in range(s.vocab - len(SPECIALS)))])
    task = CaptioningTask(config, vocab)
    torch.manual_seed(0)
    base_model = build_model(config, vocab).to(device).train()
    fast_model = copy.deepcopy(base_model).to(memory_format=torch.channels_last)
    pixels = torch.randn(s.train_batch, 3, size, size, device=device)
    captions = torch.randint(4, len(vocab), (s.train_batch, s.caption_len), device=device)
    captions[:, 0] = vocab.bos_id

    def trainer(model: torch.nn.Module, x: torch.Tensor, context):
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-5)
        batch = {"images": x, "captions": captions}

        def steps() -> None:
            for _ in range(s.train_iters):
                with context():
                    loss = task.training_step(model, batch)["loss"]
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            _sync(device)

        return steps

    train_sides = {
        "fp32": trainer(base_model, pixels, nullcontext),
        "bf16_cl": trainer(fast_model, pixels.contiguous(memory_format=torch.channels_last), amp),
    }
    for fn in train_sides.values():
        fn()  # warm-up (also creates the Adam state)
    ctx.log(f"training step: timing {s.rounds} interleaved rounds on {device}")
    train_t = interleave(s.rounds, train_sides)
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else str(device)
    return [
        Figure(
            key="cuda_bf16_encoder_speedup",
            title=f"{s.encoder} encoder images/s, bf16 autocast + channels_last vs fp32 ({device_name})",
            value=round(enc_t.ratio("fp32", "bf16_cl"), 2),
            target=2.0,
            baseline=f"fp32 NCHW, batch {s.encoder_batch}, inference_mode",
            details={
                "device": device_name,
                "images_per_s": {
                    k: round(s.encoder_batch * s.encoder_iters / enc_t.median(k), 1) for k in enc_t.rounds
                },
                **enc_t.ratio_details("fp32", "bf16_cl"),
                "timings": enc_t.summary(),
            },
        ),
        Figure(
            key="cuda_bf16_train_step_speedup",
            title=f"full fine-tuning step/s ({s.encoder} + attention decoder), bf16 + channels_last vs fp32",
            value=round(train_t.ratio("fp32", "bf16_cl"), 2),
            target=None,
            baseline=f"fp32 NCHW training step, batch {s.train_batch}",
            details={
                "device": device_name,
                "steps_per_s": {k: round(s.train_iters / train_t.median(k), 3) for k in train_t.rounds},
                **train_t.ratio_details("fp32", "bf16_cl"),
                "timings": train_t.summary(),
            },
        ),
    ]
