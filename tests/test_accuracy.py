"""ClassificationEvaluator: top-k, per-class metrics, confusion matrix, batching."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from vision2seq.evaluation.accuracy import ClassificationEvaluator


def test_topk_accuracy():
    scores = np.array(
        [
            [0.1, 0.6, 0.2, 0.1],  # target 1: rank 0 -> top1, top2
            [0.5, 0.1, 0.3, 0.1],  # target 2: rank 1 -> top2 only
            [0.4, 0.3, 0.2, 0.1],  # target 3: rank 3 -> neither
            [0.1, 0.1, 0.1, 0.7],  # target 3: rank 0
        ]
    )
    evaluator = ClassificationEvaluator(4, topk=(1, 2))
    evaluator.update(scores, np.array([1, 2, 3, 3]))
    metrics = evaluator.compute()
    assert metrics["top1"] == pytest.approx(2 / 4)
    assert metrics["top2"] == pytest.approx(3 / 4)


def test_ties_break_towards_lower_class_index_like_argmax():
    # Constant scores must not count as correct for every target: class 0 is "predicted", class 2 ranks 3rd.
    evaluator = ClassificationEvaluator(3, topk=(1, 2, 3))
    evaluator.update(np.zeros((3, 3)), np.array([0, 1, 2]))
    metrics = evaluator.compute()
    assert metrics["top1"] == pytest.approx(1 / 3)
    assert metrics["top2"] == pytest.approx(2 / 3)
    assert metrics["top3"] == pytest.approx(1.0)
    assert metrics["confusion_matrix"] == [[1, 0, 0], [1, 0, 0], [1, 0, 0]]


def test_topk_larger_than_num_classes_is_left_out():
    evaluator = ClassificationEvaluator(3)  # default topk (1, 5)
    evaluator.update(np.eye(3), np.array([0, 1, 2]))
    metrics = evaluator.compute()
    assert "top1" in metrics and "top5" not in metrics


def test_mean_class_accuracy_with_imbalanced_classes():
    # Class 0: 8 samples, all right. Class 1: 2 samples, 0 right (predicted 0). Class 2: no samples.
    # Overall accuracy 8/10 = 0.8, but mean class accuracy over classes with samples = (1 + 0) / 2 = 0.5.
    scores = np.array([[0.9, 0.05, 0.05]] * 10)
    targets = np.array([0] * 8 + [1] * 2)
    evaluator = ClassificationEvaluator(3, class_names=["cat", "dog", "bird"])
    evaluator.update(scores, targets)
    metrics = evaluator.compute()
    assert metrics["top1"] == pytest.approx(0.8)
    assert metrics["mean_class_accuracy"] == pytest.approx(0.5)
    cat, dog, bird = metrics["per_class"]
    # cat: predicted 10 times, 8 right -> precision 0.8, recall 1.0.
    assert cat == {
        "class": "cat",
        "accuracy": 1.0,
        "precision": pytest.approx(0.8),
        "recall": 1.0,
        "support": 8,
    }
    assert dog == {"class": "dog", "accuracy": 0.0, "precision": 0.0, "recall": 0.0, "support": 2}
    assert bird["support"] == 0 and bird["precision"] == 0.0
    assert metrics["confusion_matrix"] == [[8, 0, 0], [2, 0, 0], [0, 0, 0]]


def test_confusion_matrix_rows_are_true_columns_predicted(tmp_path):
    scores = np.array([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    evaluator = ClassificationEvaluator(2, class_names=["no", "yes"], topk=(1,))
    evaluator.update(scores, np.array([0, 1, 1]))  # true 0 -> pred 1; true 1 -> pred 1; true 1 -> pred 0
    assert evaluator.compute()["confusion_matrix"] == [[0, 1], [1, 1]]
    path = tmp_path / "out" / "confusion.csv"
    evaluator.save_confusion_csv(path)
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows == [["true\\predicted", "no", "yes"], ["no", "0", "1"], ["yes", "1", "1"]]


def test_incremental_updates_equal_single_update_and_accept_tensors():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(50, 7)).astype(np.float32)
    targets = rng.integers(0, 7, size=50)
    whole = ClassificationEvaluator(7, topk=(1, 3, 5))
    whole.update(scores, targets)
    batched = ClassificationEvaluator(7, topk=(1, 3, 5))
    for start in range(0, 50, 16):
        batched.update(
            torch.from_numpy(scores[start : start + 16]), torch.from_numpy(targets[start : start + 16])
        )
    assert batched.compute() == whole.compute()
    assert batched.num_samples == 50
    batched.reset()
    assert batched.num_samples == 0


def test_accepts_half_precision_tensors_with_grad():
    scores = torch.tensor([[2.0, 1.0], [0.0, 3.0]], dtype=torch.bfloat16, requires_grad=True)
    evaluator = ClassificationEvaluator(2, topk=(1,))
    evaluator.update(scores, torch.tensor([0, 1]))
    assert evaluator.compute()["top1"] == 1.0


def test_rejects_bad_input():
    evaluator = ClassificationEvaluator(3)
    with pytest.raises(ValueError, match="no samples"):
        evaluator.compute()
    with pytest.raises(ValueError, match=r"shape \(batch, 3\)"):
        evaluator.update(np.zeros((2, 4)), np.array([0, 1]))
    with pytest.raises(ValueError, match=r"targets must have shape \(2,\)"):
        evaluator.update(np.zeros((2, 3)), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        evaluator.update(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match="integer"):
        evaluator.update(np.zeros((2, 3)), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="NaN"):
        evaluator.update(np.full((1, 3), np.nan), np.array([0]))
    with pytest.raises(ValueError, match="class names"):
        ClassificationEvaluator(3, class_names=["a", "b"])
