"""Plots and tables of ``vision2seq.viz``: shapes of the returned axes, attention upsampling, table text,
and the moving-square generator of ``vision2seq.synthetic``. Headless (Agg) and fast: no model is trained."""

from __future__ import annotations

import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from vision2seq import viz  # noqa: E402
from vision2seq.data.tokenizer import detokenize  # noqa: E402
from vision2seq.synthetic import MOTION_CLASSES, make_motion_videos, motion_frames  # noqa: E402

CAPTION_METRICS = {
    "bleu_1": 0.8,
    "bleu_2": 0.7,
    "bleu_3": 0.6,
    "bleu_4": 0.5,
    "cider": 2.5,
    "rouge_l": 0.75,
}
VIDEO_METRICS = {
    "top1": 0.75,
    "mean_class_accuracy": 0.7,
    "per_class": [
        {"class": "MoveLeft", "accuracy": 1.0, "precision": 0.5, "recall": 1.0, "support": 2},
        {"class": "MoveRight", "accuracy": 0.4, "precision": 1.0, "recall": 0.4, "support": 5},
    ],
    "confusion_matrix": [[2, 0], [3, 2]],
    "clip_top1": 0.5,
}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# --- tables ---------------------------------------------------------------------------------------


def test_metrics_table_keeps_scalars_in_order_and_renders():
    table = viz.metrics_table(VIDEO_METRICS, title="test split")
    assert table.columns == ["metric", "value"]
    assert table.rows == [["top1", 0.75], ["mean_class_accuracy", 0.7], ["clip_top1", 0.5]]
    text = str(table)
    assert text.splitlines()[0] == "test split"
    assert "mean_class_accuracy  0.7000" in text and "per_class" not in text
    html = table._repr_html_()
    assert html.startswith("<table>") and "<caption>test split</caption>" in html
    assert '<td style="text-align: right">0.7500</td>' in html
    markdown = table.to_markdown().splitlines()
    assert markdown[2:4] == ["| metric | value |", "|---|---:|"]
    assert "| top1 | 0.7500 |" in markdown


def test_metrics_table_selected_keys_and_digits():
    table = viz.metrics_table(CAPTION_METRICS, keys=["cider", "bleu_4"], digits=2)
    assert table.column("metric") == ["cider", "bleu_4"]
    assert str(table).splitlines()[2:] == ["cider    2.50", "bleu_4   0.50"]
    with pytest.raises(KeyError):
        viz.metrics_table(CAPTION_METRICS, keys=["meteor"])


def test_compare_table_one_row_per_result():
    sweep = {1: CAPTION_METRICS, 3: {**CAPTION_METRICS, "bleu_4": 0.55}}
    table = viz.compare_table(sweep, keys=["bleu_4", "cider"], label="beam size")
    assert table.columns == ["beam size", "bleu_4", "cider"]
    assert table.rows == [[1, 0.5, 2.5], [3, 0.55, 2.5]]
    assert viz.compare_table(sweep).columns == ["run", *CAPTION_METRICS]


def test_per_class_table_and_html_escaping():
    table = viz.per_class_table(VIDEO_METRICS)
    assert table.columns == ["class", "accuracy", "precision", "recall", "support"]
    assert table.rows[1] == ["MoveRight", 0.4, 1.0, 0.4, 5]
    assert "MoveRight     0.400      1.000   0.400        5" in str(table)
    odd = viz.Table(["name"], [["<b>&"]])
    assert "&lt;b&gt;&amp;" in odd._repr_html_()
    with pytest.raises(ValueError, match="2 cells for 1 columns"):
        viz.Table(["a"], [[1, 2]])


# --- attention ------------------------------------------------------------------------------------


def test_upsample_attention_nearest_repeats_each_cell_over_its_patch():
    attention = np.arange(2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3)
    up = viz.upsample_attention(attention, (12, 6), mode="nearest")
    assert up.shape == (2, 12, 6) and up.dtype == np.float32
    np.testing.assert_array_equal(up, np.repeat(np.repeat(attention, 4, axis=1), 2, axis=2))


def test_upsample_attention_bilinear_keeps_range_constant_and_location():
    constant = np.full((3, 3), 1 / 9, dtype=np.float32)
    np.testing.assert_allclose(viz.upsample_attention(constant, (96, 96)), 1 / 9, rtol=1e-6)
    corner = np.zeros((1, 3, 3), dtype=np.float32)
    corner[0, 0, 2] = 1.0  # top-right cell
    up = viz.upsample_attention(torch.from_numpy(corner), (30, 30))[0]
    assert up.shape == (30, 30) and up.min() >= 0 and up.max() <= 1
    row, col = np.unravel_index(up.argmax(), up.shape)
    assert row < 10 and col >= 20  # the peak stays in the top-right patch
    assert up[:10, 20:].mean() > 0.5 and up[20:, :10].max() == 0
    assert viz.upsample_attention(np.zeros((0, 3, 3)), (8, 8)).shape == (0, 8, 8)
    with pytest.raises(ValueError, match="mode"):
        viz.upsample_attention(constant, (8, 8), mode="bicubic")


def test_plot_attention_panel_per_word_with_upsampled_overlay():
    image = np.zeros((48, 48, 3), dtype=np.uint8)
    words = ["a", "red", "square", "."]
    attention = np.random.default_rng(0).dirichlet(np.ones(9), size=4).reshape(4, 3, 3)
    _fig, axes = viz.plot_attention(image, words, attention, ncols=3)
    assert len(axes) == 6  # 2 rows of 3: the image + 4 words, one panel switched off
    assert [ax.get_title().split()[0] for ax in axes[1:5]] == words
    assert axes[0].get_title() == "3x3 grid, uniform = 0.11"
    overlay = axes[1].get_images()[1]
    assert overlay.get_array().shape == (48, 48)
    expected = viz.upsample_attention(attention[0], (48, 48))
    np.testing.assert_allclose(np.asarray(overlay.get_array()), expected)
    # one colour scale for the whole caption by default, per word or fixed on request
    assert all(ax.get_images()[1].get_clim() == pytest.approx((0, attention.max())) for ax in axes[1:5])
    assert not axes[5].axison
    _, axes = viz.plot_attention(image, words, attention, scale="word")
    assert axes[2].get_images()[1].get_clim() == pytest.approx((0, attention[1].max()))
    _, axes = viz.plot_attention(image, words, attention, scale=1.0)
    assert axes[2].get_images()[1].get_clim() == (0, 1.0)
    with pytest.raises(ValueError, match="scale"):
        viz.plot_attention(image, words, attention, scale="global")
    with pytest.raises(ValueError, match="does not match 3 words"):
        viz.plot_attention(image, words[:3], attention)


def test_plot_attention_without_attention_shows_the_image():
    _fig, axes = viz.plot_attention(np.zeros((8, 8, 3), dtype=np.uint8), ["a"], None)
    assert len(axes) == 1 and "no attention" in axes[0].get_title()


def test_caption_words_inverts_detokenize():
    tokens = ["a", "<unk>", "dog", ",", "running", "(", "fast", ")", "man's", "'", "s", "1", "%", "."]
    assert viz.caption_words(detokenize(tokens)) == tokens


# --- caption plots ---------------------------------------------------------------------------------


def test_caption_grid_one_panel_per_image_with_texts():
    images = [np.full((16, 16, 3), i * 40, dtype=np.uint8) for i in range(5)]
    generated = [f"caption {i}" for i in range(5)]
    references = [[f"ref {i} a", f"ref {i} b", f"ref {i} c"] for i in range(5)]
    fig, axes = viz.caption_grid(images, generated, references, ncols=3)
    assert len(axes) == 6 and fig.axes[0] is axes[0]
    label = axes[4].get_xlabel()
    assert label.startswith("gen: caption 4") and "ref: ref 4 b" in label and "ref 4 c" not in label
    assert not axes[5].axison
    fig, axes = viz.caption_grid(images[:2], generated[:2])
    assert len(axes) == 2 and axes[1].get_xlabel() == "gen: caption 1"
    with pytest.raises(ValueError, match="same length"):
        viz.caption_grid(images, generated[:2])


def test_caption_grid_draws_into_given_axes():
    fig, given = plt.subplots(1, 2)
    out_fig, axes = viz.caption_grid([np.zeros((4, 4, 3))] * 2, ["x", "y"], axes=given)
    assert out_fig is fig and list(axes) == list(given)


def test_plot_metric_vs_beam_one_panel_per_metric_from_zero():
    sweep = {
        5: {"bleu_4": 0.6, "cider": 3.0},
        1: {"bleu_4": 0.4, "cider": 2.0},
        3: {"bleu_4": 0.5, "cider": 2.8},
    }
    _fig, axes = viz.plot_metric_vs_beam(sweep)
    assert [ax.get_title() for ax in axes] == ["bleu_4", "cider"]
    (bleu,) = axes[0].get_lines()
    np.testing.assert_array_equal(bleu.get_xdata(), [1, 3, 5])
    np.testing.assert_allclose(bleu.get_ydata(), [0.4, 0.5, 0.6])
    (cider,) = axes[1].get_lines()
    np.testing.assert_allclose(cider.get_ydata(), [2.0, 2.8, 3.0])
    # No twin axes: every panel has its own y-axis, starting at 0 so small differences look small.
    assert len(_fig.axes) == 2
    assert all(ax.get_ylim()[0] == 0 for ax in axes)
    assert [t.get_text() for t in axes[0].texts] == ["0.400", "0.500", "0.600"]
    _, given = plt.subplots()
    fig2, axes2 = viz.plot_metric_vs_beam(sweep, keys=("bleu_4",), axes=[given])
    assert axes2[0] is given and fig2 is given.figure and len(fig2.axes) == 1


def _boxes(fig, *artists):
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    return [a.get_window_extent(renderer) for a in artists]


# --- classification plots --------------------------------------------------------------------------


def test_plot_per_class_accuracy_bars_and_mean_line():
    _fig, ax = viz.plot_per_class_accuracy(VIDEO_METRICS)
    widths = [bar.get_width() for bar in ax.patches]
    assert widths == [0.4, 1.0]  # drawn bottom-up: the first class is at the top
    assert [t.get_text() for t in ax.get_yticklabels()] == ["MoveRight", "MoveLeft"]
    (mean,) = ax.get_lines()
    assert mean.get_xdata()[0] == 0.7
    # The mean is named in the title, not in a legend box that could hide a bar, and the value labels
    # sit right of every bar and of the mean line.
    assert ax.get_legend() is None and "mean 0.700" in ax.get_title()
    assert all(text.get_position()[0] > 1.0 for text in ax.texts)
    line_box, *label_boxes = _boxes(_fig, mean, *ax.texts)
    assert all(not line_box.overlaps(box) for box in label_boxes)
    _, ax = viz.plot_per_class_accuracy(VIDEO_METRICS, sort=True, key="precision")
    assert [bar.get_width() for bar in ax.patches] == [0.5, 1.0]


def test_plot_confusion_matrix_still_works_and_saves(tmp_path):
    _fig, ax = viz.plot_confusion_matrix(VIDEO_METRICS["confusion_matrix"], ["MoveLeft", "MoveRight"])
    np.testing.assert_allclose(ax.get_images()[0].get_array(), [[1, 0], [0.6, 0.4]])
    colour_bar = next(a for a in _fig.axes if a is not ax)
    title, bar = _boxes(_fig, ax.title, colour_bar)
    assert title.x1 < bar.x0, "the title runs into the colour bar"
    written = viz.save_confusion_matrix(VIDEO_METRICS, tmp_path / "confusion")
    assert [p.name for p in written] == ["confusion.csv", "confusion.png"]


def test_plot_stream_one_line_per_class_and_top_k():
    names = ["a", "b", "c"]
    probs = torch.tensor([[0.5, 0.3, 0.2], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1]])
    updates = [
        SimpleNamespace(frame=i, time_s=i / 25, labels=[(names[int(p.argmax())], float(p.max()))], probs=p)
        for i, p in enumerate(probs)
    ]
    _fig, ax = viz.plot_stream(updates, names, true_class="b")
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["a", "b (true)", "c"]
    np.testing.assert_allclose(lines[1].get_ydata(), [0.3, 0.7, 0.8], rtol=1e-6)
    np.testing.assert_allclose(lines[1].get_xdata(), [0, 0.04, 0.08])
    assert "b (0.80)" in ax.get_title()
    _, ax = viz.plot_stream(updates, names, true_class="c", top=1)
    assert [line.get_label() for line in ax.get_lines()] == ["b", "c (true)"]
    with pytest.raises(ValueError, match="no stream updates"):
        viz.plot_stream([], names)


# --- synthetic videos ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(MOTION_CLASSES))
def test_motion_frames_move_the_square_in_its_direction(name):
    frames = motion_frames(name, 8, 32, rng=random.Random(3))
    assert frames.shape == (8, 32, 32, 3) and frames.dtype == np.uint8
    background = frames[0, 0, 0] if not (frames[0, 0, 0] > 140).all() else frames[0, -1, -1]
    centres = []
    for frame in frames:
        rows, cols = np.nonzero((frame != background).any(axis=-1))
        centres.append((rows.mean(), cols.mean()))
    drow, dcol = np.subtract(centres[-1], centres[0])
    expected = MOTION_CLASSES[name]
    assert np.sign(round(drow)) == expected[0] and np.sign(round(dcol)) == expected[1]
    assert max(abs(drow), abs(dcol)) >= 8  # it crosses a good part of the frame


def test_make_motion_videos_writes_ucf101_layout(tmp_path):
    from vision2seq.data.video.datasets import parse_ucf101
    from vision2seq.data.video.reader import iter_frames

    videos, annotations = make_motion_videos(
        tmp_path, ("MoveUp", "MoveLeft"), groups=3, clips_per_group=2, test_groups=(2,), num_frames=6
    )
    assert (annotations / "classInd.txt").read_text().splitlines() == ["1 MoveUp", "2 MoveLeft"]
    train = (annotations / "trainlist01.txt").read_text().splitlines()
    assert train[0] == "MoveUp/v_MoveUp_g01_c01.avi 1" and len(train) == 8
    test = (annotations / "testlist01.txt").read_text().splitlines()
    assert test == [f"{c}/v_{c}_g02_c0{i}.avi" for c in ("MoveUp", "MoveLeft") for i in (1, 2)]
    parsed = parse_ucf101(videos, annotations, 1, "test")
    assert parsed.class_names == ["MoveUp", "MoveLeft"] and [s.label for s in parsed.samples] == [0, 0, 1, 1]
    decoded = list(iter_frames(videos / test[0]))
    assert len(decoded) == 6 and decoded[0][2].shape == (32, 32, 3)
    with pytest.raises(ValueError, match="unknown motion classes"):
        make_motion_videos(tmp_path, ("Jump",))


# --- caption samples from an untrained captioner ----------------------------------------------------


@pytest.mark.parametrize("kind", ["attention", "show_tell"])
def test_caption_samples_words_match_attention_maps(tmp_path, kind):
    from vision2seq.config import load_config
    from vision2seq.data.vocab import Vocabulary
    from vision2seq.demo import demo_config_path, make_shapes_dataset
    from vision2seq.inference.captioner import Captioner
    from vision2seq.tasks.captioning import build_model

    annotations = make_shapes_dataset(tmp_path, n_train=2, n_val=0, n_test=5)
    config = load_config(
        demo_config_path(),
        [
            f"data.annotations={annotations}",
            f"data.images={tmp_path / 'images'}",
            f"model.decoder.kind={kind}",
            f"model.encoder.output={'grid' if kind == 'attention' else 'pooled'}",
            "model.encoder.image_size=64",
            "model.decoder.hidden_dim=16",
            "generation.max_len=6",
        ],
    )
    vocab = Vocabulary(["<pad>", "<bos>", "<eos>", "<unk>", "a", "red", "circle", "."])
    torch.manual_seed(0)
    model = build_model(config, vocab, load_weights=False)
    with torch.no_grad():  # an untrained decoder may emit <pad>/<bos>, which captions leave out
        model.decoder.fc.bias[[vocab.pad_id, vocab.bos_id]] = -1e4
    captioner = Captioner(model, vocab, config, "cpu")
    samples = viz.caption_samples(captioner, "test", 3, ["generation.beam_size=2"])
    assert len(samples) == 3 and len(set(samples.keys)) == 3
    assert all(image.size == (64, 64) for image in samples.images)  # resized from 96 and centre-cropped
    assert all(len(refs) == 3 for refs in samples.references)
    assert captioner.config.generation.beam_size == 3  # the overrides did not leak into the caller's
    for words, caption, attention in zip(samples.words, samples.generated, samples.attention, strict=True):
        assert detokenize(words) == caption and len(words) <= 6
        if kind == "attention":
            grid = captioner.model.encoder.grid_size
            assert attention.shape == (len(words), *grid)
            np.testing.assert_allclose(attention.sum(axis=(1, 2)), 1, rtol=1e-4)
        else:
            assert attention is None
    first_two = viz.caption_samples(captioner, "test", 2, seed=None).keys
    assert first_two == viz.caption_samples(captioner, "test", 5, seed=None).keys[:2]
