"""Grid positions in the attention decoder: the context says where the attended cells are.

Soft attention's context is a weighted sum over the grid's cells, so a decoder without positions cannot
tell a grid from the same cells in another order: "a red circle above a blue square" and the converse
look the same to it. These tests pin that limitation down, check that ``positions`` removes it, and that
checkpoints written before the option keep decoding as they did.
"""

from __future__ import annotations

import json

import pytest
import tiny_models
import torch

from vision2seq.config import with_overrides
from vision2seq.engine.checkpoint import load_checkpoint, save_checkpoint
from vision2seq.models.caption_model import AttentionDecoder, grid_shape, sinusoidal_grid
from vision2seq.models.generation import greedy
from vision2seq.tasks import captioning

FEATURE_DIM, VOCAB = 12, 20
tiny_captioner = tiny_models.tiny_captioner


def decoder(positions: bool) -> AttentionDecoder:
    torch.manual_seed(0)
    model = AttentionDecoder(
        FEATURE_DIM, VOCAB, embed_dim=8, hidden_dim=16, attention_dim=10, positions=positions
    )
    return model.eval()


def captions(batch: int) -> torch.Tensor:
    tokens = torch.randint(3, VOCAB, (batch, 6))
    tokens[:, 0] = 1
    return tokens


@pytest.mark.parametrize("positions", [False, True])
def test_swapping_cells_changes_the_prediction_only_with_positions(positions: bool) -> None:
    model = decoder(positions)
    grid = torch.randn(2, 9, FEATURE_DIM)  # a 3x3 grid
    swapped = grid.flip(1)  # top-left <-> bottom-right, ...: the same cells, mirrored
    tokens = captions(2)
    with torch.no_grad():
        same_cells = model(grid, tokens).logits, model(swapped, tokens).logits
    if positions:
        assert not torch.allclose(*same_cells, atol=1e-4)
    else:  # the limitation positions remove: a permutation of the cells is invisible to attention
        torch.testing.assert_close(*same_cells)


def test_sinusoidal_codes_follow_the_flattened_feature_map() -> None:
    rows, cols = 2, 3
    codes = sinusoidal_grid(rows, cols, 16)
    assert codes.shape == (6, 16)
    grid = codes.view(rows, cols, 16)
    # The first half codes the row (same along a row), the second the column (same down a column).
    torch.testing.assert_close(grid[0, 0, :8], grid[0, 2, :8])
    torch.testing.assert_close(grid[0, 1, 8:], grid[1, 1, 8:])
    assert not torch.allclose(grid[0, 0, :8], grid[1, 0, :8])
    assert not torch.allclose(grid[0, 0, 8:], grid[0, 1, 8:])
    assert len({tuple(c.tolist()) for c in codes}) == 6  # every cell its own code
    assert grid_shape(49) == (7, 7) and grid_shape(8) == (1, 8)


def test_step_by_step_matches_forward_with_positions() -> None:
    model = decoder(True)
    grid, tokens = torch.randn(3, 4, FEATURE_DIM), captions(3)
    with torch.no_grad():
        out = model(grid, tokens)
        state = model.init_state(grid)
        for t in range(tokens.size(1) - 1):
            log_probs, state, alpha = model.step(tokens[:, t], state)
            torch.testing.assert_close(log_probs, out.logits[:, t].log_softmax(-1))
            torch.testing.assert_close(alpha, out.alphas[:, t])


def test_attention_checkpoints_from_before_positions_load_without_them(tiny_captioner, tmp_path) -> None:
    checkpoint = load_checkpoint(tiny_captioner.checkpoint)
    source = captioning.CaptioningTask.restore(checkpoint, "x", device="cpu")
    attention = ["model.decoder.kind=attention", "model.encoder.output=grid", "model.decoder.positions=false"]
    before = with_overrides(source.config, attention)
    torch.manual_seed(0)
    model = captioning.build_model(before, source.task.vocab, load_weights=False).eval()
    assert model.decoder.positions is None
    config = json.loads(json.dumps(checkpoint["config"]))
    config["model"]["decoder"]["kind"], config["model"]["encoder"]["output"] = "attention", "grid"
    config["model"]["decoder"].pop("positions", None)
    written_before = tmp_path / "old.pt"
    save_checkpoint(written_before, {**checkpoint, "config": config, "model": model.state_dict()})
    restored = captioning.CaptioningTask.restore(
        load_checkpoint(written_before), str(written_before), device="cpu"
    )
    assert restored.config.model.decoder.positions is False
    assert restored.model.decoder.positions is None
    # New configs get positions, and their checkpoints hold the projection.
    now = captioning.build_model(
        with_overrides(source.config, attention[:2]), source.task.vocab, load_weights=False
    )
    assert any(k.startswith("decoder.positions.") for k in now.state_dict())


def relation_batch(generator: torch.Generator, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Grids of two objects in different rows of a 3x3 grid, and the caption "<upper> above <lower>".

    An object is a one-hot identity (4 kinds) in the first features of its cell, plus noise everywhere,
    so what is where is in *which cell* holds which identity, and nowhere else.
    """
    above, kinds = 3 + 4 + 1, 4  # tokens: specials 0-3, objects 4-7, "above" 8
    grid = 0.1 * torch.randn(batch, 9, FEATURE_DIM, generator=generator)
    tokens = torch.full((batch, 5), 2)  # <bos> upper above lower <eos>
    tokens[:, 0], tokens[:, 2] = 1, above
    for i in range(batch):
        upper, lower = torch.randperm(kinds, generator=generator)[:2].tolist()
        rows = torch.randperm(3, generator=generator)[:2].sort().values.tolist()
        cols = torch.randint(0, 3, (2,), generator=generator).tolist()
        grid[i, rows[0] * 3 + cols[0], upper] += 1.0
        grid[i, rows[1] * 3 + cols[1], lower] += 1.0
        tokens[i, 1], tokens[i, 3] = 4 + upper, 4 + lower
    return grid, tokens


@pytest.mark.slow  # 1,000 training steps
@pytest.mark.parametrize("positions", [False, True])
def test_decoder_learns_which_object_is_above_only_with_positions(positions: bool) -> None:
    """Trained on captions that name the upper object first, the decoder names it first on new grids
    when the cells carry their positions; without them it can only guess (half right)."""
    torch.manual_seed(0)
    model = AttentionDecoder(
        FEATURE_DIM, VOCAB, embed_dim=16, hidden_dim=32, attention_dim=16, dropout=0.0, positions=positions
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(1)
    for _ in range(1000):  # measured: all 200 right with positions, 109 without
        grid, tokens = relation_batch(generator, 64)
        logits = model(grid, tokens).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), tokens[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    grid, tokens = relation_batch(torch.Generator().manual_seed(2), 200)
    first = greedy(model, grid, bos_id=1, eos_id=2, max_len=4).tokens
    right = sum(caption[:1] == [int(t)] for caption, t in zip(first, tokens[:, 1], strict=True)) / 200
    assert right >= 0.9 if positions else right <= 0.7, right
