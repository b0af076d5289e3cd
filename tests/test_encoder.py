import numpy as np
import pytest
import torch

from vision2seq.errors import UserError
from vision2seq.models.encoder import ImageEncoder, preprocessing_for


@pytest.mark.parametrize(
    "name",
    ["resnet18", "mobilenet_v3_small", "efficientnet_b0", "convnext_tiny", "regnet_y_400mf"],
)
def test_backbone_families_pooled_and_grid(name):
    torch.manual_seed(0)
    enc = ImageEncoder(name, weights=None, output="grid", image_size=64)
    x = torch.randn(2, 3, 64, 64)
    grid = enc(x)
    h, w = enc.grid_size
    assert grid.shape == (2, h * w, enc.feature_dim)
    enc.output = "pooled"
    pooled = enc(x)
    assert pooled.shape == (2, enc.feature_dim)
    torch.testing.assert_close(pooled, grid.mean(dim=1), rtol=1e-4, atol=1e-5)


def test_preprocessing_comes_from_the_weights():
    p = preprocessing_for("resnet50", "IMAGENET1K_V2")
    assert (p.crop_size, p.resize_size) == (224, 232)
    assert p.mean == pytest.approx((0.485, 0.456, 0.406))
    assert preprocessing_for("resnet50", None).crop_size == 224  # random init uses DEFAULT's preprocessing
    small = preprocessing_for("resnet50", None, image_size=112)
    assert (small.crop_size, small.resize_size) == (112, 116)


def test_frozen_and_fine_tuned_stages():
    enc = ImageEncoder("resnet18", weights=None, image_size=64)
    assert enc.frozen and not any(p.requires_grad for p in enc.parameters())
    enc = ImageEncoder("resnet18", weights=None, trainable_from="layer4", image_size=64)
    assert not enc.frozen
    assert all(p.requires_grad for p in enc.stages["layer4"].parameters())
    assert not any(p.requires_grad for p in enc.stages["layer3"].parameters())
    enc.train()
    assert enc.stages["layer4"].training and not enc.stages["bn1"].training  # frozen BN stays in eval
    mobile = ImageEncoder("mobilenet_v3_small", weights=None, trainable_from="11", image_size=64)
    assert "features:11" in mobile.trainable_stages and "features:10" not in mobile.trainable_stages


def test_local_weights_file_is_loaded(tmp_path):
    torch.manual_seed(1)
    source = ImageEncoder("resnet18", weights=None, image_size=64)
    full = {f"{k.replace(':', '.')}": v for k, v in source.stages.state_dict().items()}
    path = tmp_path / "resnet18.pth"
    torch.save(full, path)
    torch.manual_seed(2)
    loaded = ImageEncoder("resnet18", weights=str(path), image_size=64)
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(loaded(x), source(x))


def test_bad_encoder_settings_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="unknown torchvision model 'resnet9'"):
        ImageEncoder("resnet9", weights=None)
    with pytest.raises(UserError, match="unknown weights 'IMAGENET9K'"):
        ImageEncoder("resnet18", weights="IMAGENET9K")
    with pytest.raises(UserError, match="no stage 'layer9'"):
        ImageEncoder("resnet18", weights=None, trainable_from="layer9", image_size=64)
    with pytest.raises(UserError, match="not found"):
        ImageEncoder("resnet18", weights=str(tmp_path / "none.pth"))
    with pytest.raises(UserError, match="not supported as a feature encoder"):
        ImageEncoder("vit_b_16", weights=None)


# --- how a non-square image becomes square (model.encoder.resize) ----------------------------------


def _circle_at_right_edge():
    """320x240 grey, a red circle touching the right edge (what a centre crop cuts off)."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (320, 240), (128, 128, 128))
    ImageDraw.Draw(image).ellipse((270, 95, 320, 145), fill=(255, 0, 0))
    return image


def _red_fraction(image) -> float:

    a = np.asarray(image).astype(int)
    return float(((a[..., 0] > 200) & (a[..., 1] < 60)).mean())


def test_resize_modes_keep_or_cut_the_image_edges():
    image = _circle_at_right_edge()
    views = {
        mode: preprocessing_for("resnet18", None, 64, mode).geometry()(image)
        for mode in ("squash", "pad", "crop")
    }
    assert all(view.size == (64, 64) for view in views.values())
    assert _red_fraction(views["crop"]) == 0  # the centre crop loses the circle
    assert _red_fraction(views["squash"]) > 0.01 and _red_fraction(views["pad"]) > 0.01

    padded = np.asarray(views["pad"])
    assert padded[:7].max() == 0 and padded[-7:].max() == 0  # 4:3 fitted into black bars top and bottom
    assert padded[32, 1].tolist() == [128, 128, 128]  # ... and no bars at the sides
    # Tensors and video clips (T, C, H, W) go through the same steps as PIL images.
    clip = torch.from_numpy(np.array(image)).permute(2, 0, 1).expand(3, -1, -1, -1)
    for mode in ("squash", "pad", "crop"):
        out = preprocessing_for("resnet18", None, 64, mode).transform()(clip)
        assert out.shape == (3, 3, 64, 64)


def test_resize_mode_is_part_of_the_cache_fingerprint_and_the_config():
    from vision2seq.config import load_config
    from vision2seq.data.features import module_fingerprint
    from vision2seq.tasks.base import build_encoder

    prints = set()
    for mode in ("squash", "pad", "crop"):
        torch.manual_seed(0)
        config = load_config(
            None,
            ["model.encoder.name=resnet18", "model.encoder.weights=null", f"model.encoder.resize={mode}"],
        )
        encoder = build_encoder(config)
        assert encoder.preprocessing.resize == mode
        prints.add(module_fingerprint(encoder, encoder.output, encoder.preprocessing))
    assert len(prints) == 3
    assert load_config(None, []).model.encoder.resize == "squash"  # the captioning convention
    with pytest.raises(UserError, match=r"model\.encoder\.resize"):
        load_config(None, ["model.encoder.resize=stretch"])


def test_checkpoints_from_before_the_resize_key_keep_their_centre_crop(tmp_path):
    from vision2seq.engine.checkpoint import load_checkpoint, save_checkpoint

    old = {
        "task": "captioning",
        "model": {},
        "config": {"task": "captioning", "model": {"encoder": {"name": "resnet18"}}},
    }
    save_checkpoint(tmp_path / "old.pt", old)
    assert load_checkpoint(tmp_path / "old.pt")["config"]["model"]["encoder"]["resize"] == "crop"
    new = {
        **old,
        "config": {"task": "captioning", "model": {"encoder": {"name": "resnet18", "resize": "pad"}}},
    }
    save_checkpoint(tmp_path / "new.pt", new)
    assert load_checkpoint(tmp_path / "new.pt")["config"]["model"]["encoder"]["resize"] == "pad"
