"""Figure group 9: the machine's own fp32 GEMM peak, and what fraction of it each timed workload reaches.

* ``gemm_peak_gflops``: ``torch.matmul`` of two square fp32 matrices (2048 x 2048 in full mode), the
  best of several calls, at the thread count the package would choose on this machine when idle
  (``resources.auto_threads(load=0)``: every CPU but one, at least one). ``2 n^3`` FLOPs per call.
* ``peak_fraction_<workload>``: for each workload, its FLOPs counted by
  ``torch.utils.flop_counter.FlopCounterMode`` (matrix products and convolutions, forward and backward;
  element-wise work is not counted) divided by its best time of several runs at the same thread count,
  divided by the peak. Workloads (random weights; the decoders at the package's default sizes, embed 256,
  hidden 512, attention 256, vocabulary 5,000):

  - ``encoder_forward``: ResNet-50 at 224 px, batch 8, pooled, under ``inference_mode``;
  - ``encoder_train_step``: ResNet-18 at 224 px, batch 8, forward + backward + Adam (``trainable_from: all``);
  - ``decoder_train_step_{show_tell,attention}``: the cached-feature step: teacher forcing on 32 captions
    of 16 tokens over random ResNet-50-shaped features (pooled 2048 / 7x7x2048 grid), cross-entropy,
    backward, Adam;
  - ``beam_search_{attention,show_tell}``: beam 5, ``max_len`` 20 on 64 images (full-length decoding);
  - ``greedy_{attention,show_tell}``: greedy on the same 64 images.

A fraction near 1 means the workload is compute-bound at GEMM speed; far below it, the time goes to
small matrices (one row per hypothesis and time step), memory traffic, element-wise work or waits.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.common import Context, Figure


@dataclass(frozen=True)
class Sizes:
    gemm_n: int
    gemm_calls: int
    encoder: str
    image_size: int | None
    encoder_batch: int
    train_encoder: str
    train_batch: int
    feature_dim: int
    grid: int
    vocab: int
    embed: int
    hidden: int
    attention: int
    captions: int
    caption_len: int
    images: int
    repeats: int  # best of this many timed runs per workload


FULL = Sizes(2048, 5, "resnet50", None, 8, "resnet18", 8, 2048, 49, 5000, 256, 512, 256, 32, 16, 64, 3)
QUICK = Sizes(256, 2, "resnet18", 64, 2, "resnet18", 2, 64, 9, 200, 32, 64, 32, 4, 6, 4, 1)
BEAM, MAX_LEN, BOS, EOS = 5, 20, 1, 2


def package_threads(quick: bool) -> int:
    """The thread count the package's automatic choice gives on this machine when it is idle."""
    from vision2seq.resources import auto_threads

    return 1 if quick else auto_threads(load=0.0)


def gemm_peak(n: int, calls: int) -> tuple[float, float]:
    """Best fp32 ``matmul`` rate of ``n x n`` matrices, GFLOP/s, and its best seconds per call."""
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=gen), torch.randn(n, n, generator=gen)
    torch.matmul(a, b)  # warm-up (allocation, thread pool)
    best = min(_seconds(lambda: torch.matmul(a, b)) for _ in range(calls))
    return 2 * n**3 / best / 1e9, best


def _seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call of ``fn`` (matrix products and convolutions, forward and backward)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def workloads(s: Sizes) -> dict[str, Callable[[], object]]:
    """The timed workloads, each a call that runs it once (built with seeded random weights)."""
    from vision2seq.models.caption_model import build_decoder
    from vision2seq.models.encoder import ImageEncoder
    from vision2seq.models.generation import beam_search, greedy

    torch.manual_seed(0)
    out: dict[str, Callable[[], object]] = {}
    encoder = ImageEncoder(s.encoder, None, "pooled", image_size=s.image_size).eval()
    size = encoder.preprocessing.crop_size
    pixels = torch.randn(s.encoder_batch, 3, size, size)

    def encoder_forward() -> None:
        with torch.inference_mode():
            encoder(pixels)

    out["encoder_forward"] = encoder_forward

    trained = ImageEncoder(s.train_encoder, None, "pooled", image_size=s.image_size, trainable_from="all")
    trained.train()
    train_pixels = torch.randn(s.train_batch, 3, size, size)
    encoder_opt = torch.optim.Adam([p for p in trained.parameters() if p.requires_grad], lr=1e-5)

    def encoder_train_step() -> None:
        loss = trained(train_pixels).square().mean()
        encoder_opt.zero_grad(set_to_none=True)
        loss.backward()
        encoder_opt.step()

    out["encoder_train_step"] = encoder_train_step

    for kind, shape in (
        ("show_tell", (s.images, s.feature_dim)),
        ("attention", (s.images, s.grid, s.feature_dim)),
    ):
        extra = {"attention_dim": s.attention} if kind == "attention" else {}
        decoder = build_decoder(kind, s.feature_dim, s.vocab, embed_dim=s.embed, hidden_dim=s.hidden, **extra)
        features = torch.randn(shape).relu()  # post-ReLU CNN features are non-negative
        train_features = features[: s.captions]
        captions = torch.randint(4, s.vocab, (s.captions, s.caption_len))
        captions[:, 0] = BOS
        optimizer = torch.optim.Adam(decoder.parameters(), lr=4e-4)

        def train_step(decoder=decoder, feats=train_features, captions=captions, optimizer=optimizer) -> None:
            decoder.train()
            logits = decoder(feats, captions).logits  # (B, L-1, V)
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), captions[:, 1:].reshape(-1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        out[f"decoder_train_step_{kind}"] = train_step
        out[f"beam_search_{kind}"] = lambda d=decoder, f=features: beam_search(
            d, f, BOS, EOS, beam_size=BEAM, max_len=MAX_LEN
        )
        out[f"greedy_{kind}"] = lambda d=decoder, f=features: greedy(d, f, BOS, EOS, max_len=MAX_LEN)
    return out


def run(ctx: Context) -> list[Figure]:
    s = QUICK if ctx.quick else FULL
    previous = torch.get_num_threads()
    threads = package_threads(ctx.quick)
    torch.set_num_threads(threads)
    try:
        ctx.log(f"GEMM peak: {s.gemm_n}x{s.gemm_n} fp32 matmul, {threads} thread(s)")
        peak, peak_s = gemm_peak(s.gemm_n, s.gemm_calls)
        figures = [
            Figure(
                key="gemm_peak_gflops",
                title=f"fp32 matmul peak, {s.gemm_n}x{s.gemm_n}, {threads} thread(s) (the package's choice)",
                value=round(peak, 1),
                target=None,
                unit=" GFLOP/s",
                baseline="the roofline the peak_fraction_* figures are measured against",
                details={
                    "n": s.gemm_n,
                    "threads": threads,
                    "best_s": round(peak_s, 5),
                    "calls": s.gemm_calls,
                },
            )
        ]
        for name, fn in workloads(s).items():
            flops = count_flops(fn)  # also the warm-up run
            best = min(_seconds(fn) for _ in range(s.repeats))
            achieved = flops / best / 1e9
            ctx.log(f"{name}: {flops / 1e9:.2f} GFLOP in {best:.3f} s = {achieved:.1f} GFLOP/s")
            figures.append(
                Figure(
                    key=f"peak_fraction_{name}",
                    title=f"{name}: achieved GFLOP/s / fp32 matmul peak",
                    value=float(f"{achieved / peak:.3g}"),  # 3 significant digits (tiny in --quick)
                    target=None,
                    unit="",
                    baseline=f"gemm_peak_gflops ({peak:.1f} GFLOP/s, {threads} thread(s))",
                    details={
                        "gflop": round(flops / 1e9, 3),
                        "best_s": round(best, 4),
                        "gflops_achieved": round(achieved, 2),
                        "repeats": s.repeats,
                        "threads": threads,
                    },
                )
            )
        return figures
    finally:
        torch.set_num_threads(previous)
