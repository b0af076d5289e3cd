"""timm backbones (``model.encoder.name: timm:NAME``) and strict local weights files (either library).

Random-init networks only (no download): the ImageNet Lite0 path is in ``test_lite0.py``.
"""

from __future__ import annotations

import sys

import pytest
import torch

from vision2seq.errors import UserError
from vision2seq.models.encoder import ImageEncoder

timm = pytest.importorskip("timm", reason="timm backbones need the timm extra: pip install -e '.[timm]'")

LITE0 = "timm:tf_efficientnet_lite0"


@pytest.fixture(scope="module")
def lite0() -> ImageEncoder:
    torch.manual_seed(0)
    return ImageEncoder(LITE0, weights=None, output="grid", image_size=64)


def test_cnn_grid_and_pooled_features_are_timms(lite0) -> None:
    x = torch.randn(2, 3, 64, 64)
    lite0.eval()
    grid = lite0(x)
    assert lite0.grid_size == (2, 2) and grid.shape == (2, 4, 1280) and lite0.feature_dim == 1280
    model = lite0.trunk.model
    fmap = model.forward_features(x)  # (B, D, h, w)
    torch.testing.assert_close(grid, fmap.flatten(2).transpose(1, 2))
    lite0.output = "pooled"
    try:
        torch.testing.assert_close(lite0(x), model.forward_head(fmap, pre_logits=True))
    finally:
        lite0.output = "grid"


def test_vit_grid_is_its_patch_tokens_and_pooled_its_class_token() -> None:
    torch.manual_seed(0)
    enc = ImageEncoder("timm:vit_tiny_patch16_224", weights=None, output="grid", image_size=64).eval()
    x = torch.randn(1, 3, 64, 64)
    tokens = enc.trunk.model.forward_features(x)  # (1, 1 + 16, 192): class token first
    assert enc.grid_size == (4, 4)
    torch.testing.assert_close(enc(x), tokens[:, 1:])
    enc.output = "pooled"
    torch.testing.assert_close(enc(x), tokens[:, 0])  # timm's pooling of this ViT: the class token
    assert enc.stage_names[0] == "patch_embed" and enc.stage_names[-1] == "norm"


def test_preprocessing_comes_from_timms_pretrained_config() -> None:
    enc = ImageEncoder(LITE0, weights=None)
    p = enc.preprocessing
    assert (p.crop_size, p.resize_size, p.interpolation.value) == (224, 256, "bicubic")
    assert p.mean == (0.5, 0.5, 0.5) and p.std == (0.5, 0.5, 0.5)  # TF-ported weights' normalisation


def test_stage_selection_freezes_before_and_trains_from_the_stage(lite0) -> None:
    assert lite0.frozen and not any(p.requires_grad for p in lite0.parameters())
    enc = ImageEncoder(LITE0, weights=None, trainable_from="blocks.5", image_size=64)
    model = enc.trunk.model
    assert enc.trainable_stages == {"blocks.5", "blocks.6", "conv_head", "bn2"}
    assert all(p.requires_grad for p in model.blocks[5].parameters())
    assert not any(p.requires_grad for p in model.blocks[4].parameters())
    enc.train()
    assert model.blocks[5].training and not model.blocks[4].training and not model.bn1.training
    whole = ImageEncoder(LITE0, weights=None, trainable_from="all", image_size=64)
    assert all(p.requires_grad for p in whole.parameters())


def test_timm_settings_errors_name_the_key_and_the_choices(monkeypatch) -> None:
    with pytest.raises(
        UserError,
        match=r"no stage 'layer4' in timm:tf_efficientnet_lite0 \(stages: conv_stem, bn1, "
        r"blocks\.0.*conv_head, bn2; or all / null\)",
    ):
        ImageEncoder(LITE0, weights=None, trainable_from="layer4", image_size=64)
    with pytest.raises(UserError, match="unknown timm model 'efficientnet_lite9'"):
        ImageEncoder("timm:efficientnet_lite9", weights=None)
    with pytest.raises(
        UserError, match=r"unknown pretrained tag 'in9k' for timm:tf_efficientnet_lite0 .*in1k"
    ):
        ImageEncoder(LITE0, weights="in9k")
    monkeypatch.setitem(sys.modules, "timm", None)  # as if timm were not installed
    with pytest.raises(UserError, match=r"need the timm package: pip install \"vision2seq\[timm\]\""):
        ImageEncoder(LITE0, weights=None)


# --- local weights files: strict, safe, clear --------------------------------------------------------


def test_timm_weights_file_loads_with_or_without_its_classifier(tmp_path, lite0) -> None:
    torch.manual_seed(1)
    full = timm.create_model("tf_efficientnet_lite0").state_dict()
    path = tmp_path / "lite0.pth"
    torch.save(full, path)
    loaded = ImageEncoder(LITE0, weights=str(path), image_size=64)
    torch.testing.assert_close(loaded.trunk.model.conv_stem.weight, full["conv_stem.weight"])
    headless = {k: v for k, v in full.items() if not k.startswith("classifier.")}
    torch.save(headless, path)
    assert torch.equal(
        ImageEncoder(LITE0, weights=str(path), image_size=64).trunk.model.bn2.bias, full["bn2.bias"]
    )


def _full_state(name: str) -> dict[str, torch.Tensor]:
    import torchvision

    if name == LITE0:
        return timm.create_model("tf_efficientnet_lite0").state_dict()
    return torchvision.models.resnet18().state_dict()


@pytest.mark.parametrize(("name", "trunk_key"), [(LITE0, "bn2.bias"), ("resnet18", "layer4.1.bn2.bias")])
def test_weights_file_with_unexpected_or_missing_keys_is_refused(tmp_path, name, trunk_key) -> None:
    path = tmp_path / "w.pth"
    extra = {**_full_state(name), "extra.weight": torch.zeros(1)}
    torch.save(extra, path)
    with pytest.raises(
        UserError, match=r"w\.pth: weights do not match the model: 1 unexpected keys \('extra"
    ):
        ImageEncoder(name, weights=str(path), image_size=64)
    lacking = _full_state(name)
    del lacking[trunk_key]
    torch.save(lacking, path)
    with pytest.raises(UserError, match=rf"1 missing keys \('{trunk_key}'\)") as info:
        ImageEncoder(name, weights=str(path), image_size=64)
    assert "\n" not in str(info.value)


def test_weights_file_in_efficientnet_pytorch_naming_points_at_the_converter(tmp_path) -> None:
    path = tmp_path / "lukemelas.pth"
    torch.save({"_conv_stem.weight": torch.zeros(32, 3, 3, 3)}, path)
    with pytest.raises(UserError, match=r"294 missing keys .*python -m vision2seq\.models\.lite0 OUT\.pth$"):
        ImageEncoder(LITE0, weights=str(path), image_size=64)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("/dev/zero", "is not a regular file"),
        ("folder", "is a folder, not an encoder weights file"),
        ("empty.pth", "encoder weights file is empty"),
        ("none.pth", "encoder weights file not found"),
    ],
)
def test_weights_path_that_is_no_weights_file_says_what_it_is(tmp_path, target, message) -> None:
    (tmp_path / "folder").mkdir()
    (tmp_path / "empty.pth").write_bytes(b"")
    path = target if target.startswith("/") else str(tmp_path / target)
    for name in ("resnet18", LITE0):
        with pytest.raises(UserError, match=message):
            ImageEncoder(name, weights=path, image_size=64)
