"""Figure 2: batched beam search vs the same search one image at a time, and beam-5 vs greedy cost.

Decoders at realistic sizes with random (seeded) weights: embed 256, hidden 512, attention 256,
vocabulary 5,000, over ResNet-50-shaped features: Show-Attend-and-Tell on a 7x7x2048 grid and
Show-and-Tell on the pooled 2048-d vector. 64 images, beam 5, ``max_len`` 20.

With random weights ``<eos>`` is almost never the best token, so every search runs the full 20 steps
(the mean caption length is recorded in the details); the figures are therefore for full-length
decoding, the worst case for both sides.

* ``beam_batched_speedup``: time of ``beam_search`` on each image separately / on the batch of 64.
  The one-at-a-time side is timed on the first 8 of the 64 images and scaled by 64/8: every search
  runs the same 20 steps on the same shapes, so per-image cost is uniform (all 64 would add minutes).
* ``beam_vs_greedy``: ``beam_search`` (beam 5) time / ``greedy`` time on the same batch of 64.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from benchmarks.common import Context, Figure, interleave


@dataclass(frozen=True)
class Sizes:
    images: int
    one_by_one: int  # images searched one at a time per round (scaled to ``images``)
    feature_dim: int
    grid: int
    vocab: int
    embed: int
    hidden: int
    attention: int
    rounds: int


FULL = Sizes(64, 8, 2048, 49, 5000, 256, 512, 256, rounds=5)
QUICK = Sizes(8, 2, 64, 9, 300, 32, 64, 32, rounds=1)
BEAM, MAX_LEN, BOS, EOS = 5, 20, 1, 2


def run(ctx: Context) -> list[Figure]:
    from vision2seq.models.caption_model import build_decoder
    from vision2seq.models.generation import beam_search, greedy

    s = QUICK if ctx.quick else FULL
    figures = []
    for kind, shape in (
        ("attention", (s.images, s.grid, s.feature_dim)),
        ("show_tell", (s.images, s.feature_dim)),
    ):
        torch.manual_seed(0)
        extra = {"attention_dim": s.attention} if kind == "attention" else {}
        decoder = build_decoder(kind, s.feature_dim, s.vocab, embed_dim=s.embed, hidden_dim=s.hidden, **extra)
        decoder.eval()
        features = torch.randn(shape).relu()  # post-ReLU CNN features are non-negative
        lengths: list[int] = []

        def batched(decoder=decoder, features=features, lengths=lengths) -> None:
            out = beam_search(decoder, features, BOS, EOS, beam_size=BEAM, max_len=MAX_LEN)
            lengths[:] = [len(t) for t in out.tokens]

        def one_by_one(decoder=decoder, features=features) -> None:
            for i in range(s.one_by_one):
                beam_search(decoder, features[i : i + 1], BOS, EOS, beam_size=BEAM, max_len=MAX_LEN)

        def greedy_batch(decoder=decoder, features=features) -> None:
            greedy(decoder, features, BOS, EOS, max_len=MAX_LEN)

        batched()  # warm-up
        greedy_batch()
        ctx.log(f"{kind}: timing {s.rounds} interleaved rounds (beam {BEAM}, {s.images} images)")
        t = interleave(s.rounds, {"batched": batched, "one_by_one": one_by_one, "greedy": greedy_batch})
        scale = s.images / s.one_by_one
        speedup = t.ratio("one_by_one", "batched", scale)
        common = {
            "images": s.images,
            "beam_size": BEAM,
            "max_len": MAX_LEN,
            "feature_shape": list(shape[1:]),
            "vocab": s.vocab,
            "decoder": {"kind": kind, "embed": s.embed, "hidden": s.hidden, "attention": s.attention},
            "mean_caption_tokens": round(sum(lengths) / len(lengths), 2),
            "timings": t.summary(),
        }
        figures.append(
            Figure(
                key=f"beam_batched_speedup_{kind}",
                title=f"beam-5 search, batch of {s.images} vs one image at a time ({kind})",
                value=round(speedup, 2),
                target=8.0,
                baseline=(
                    f"beam_search called per image (timed on {s.one_by_one} images, scaled x{scale:g})"
                ),
                details={
                    **common,
                    "batched_s_median": t.median("batched"),
                    "one_by_one_s_scaled_median": round(t.median("one_by_one") * scale, 4),
                    **t.ratio_details("one_by_one", "batched", scale),
                },
            )
        )
        figures.append(
            Figure(
                key=f"beam_vs_greedy_{kind}",
                title=f"beam-5 time / greedy time, same batch of {s.images} ({kind})",
                value=round(t.ratio("batched", "greedy"), 2),
                target=3.0,
                op="<=",
                baseline="greedy() on the same batch and decoder",
                details={
                    **common,
                    "batched_s_median": t.median("batched"),
                    "greedy_s_median": t.median("greedy"),
                    **t.ratio_details("batched", "greedy"),
                },
            )
        )
    return figures
