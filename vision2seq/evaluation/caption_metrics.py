"""The COCO caption metrics (BLEU-1..4, METEOR, ROUGE-L, CIDEr-D, SPICE) over predictions fed in batches.

:class:`CaptionEvaluator` accumulates raw predicted and reference captions (tokenizing them with the
COCO-compatible :func:`~vision2seq.evaluation.ptb_tokenizer.ptb_tokenize` as they arrive) and scores
them all at once in :meth:`~CaptionEvaluator.compute`, because BLEU is a corpus statistic
and CIDEr-D's document frequencies come from the references of every evaluated image.
It never calls a model. BLEU, ROUGE-L and
CIDEr-D are pure Python (the default); METEOR and SPICE run the reference jars (Java, ``pip install
"vision2seq[meteor]"``) and are computed only when asked for.

On the coco-caption example (1,000 val2014 images, raw captions) it reproduces the reference numbers:
BLEU-1..4 0.5794 / 0.4044 / 0.2785 / 0.1908, CIDEr-D 0.5998, ROUGE-L 0.3963.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence

from vision2seq.evaluation.bleu import corpus_bleu
from vision2seq.evaluation.cider import corpus_cider
from vision2seq.evaluation.ptb_tokenizer import ptb_tokenize, ptb_words
from vision2seq.evaluation.rouge import corpus_rouge_l

__all__ = [
    "DEFAULT_METRICS",
    "METRICS",
    "METRIC_NAMES",
    "CaptionEvaluator",
    "resolve_metrics",
    "score_captions",
]

#: The metrics by the names ``--metrics`` takes, in the COCO evaluation's order, with the score keys of each.
METRICS: dict[str, tuple[str, ...]] = {
    "bleu": ("bleu_1", "bleu_2", "bleu_3", "bleu_4"),
    "meteor": ("meteor",),
    "rouge_l": ("rouge_l",),
    "cider": ("cider",),
    "spice": ("spice",),
}
#: What is computed unless asked otherwise: the metrics that need no Java.
DEFAULT_METRICS: tuple[str, ...] = ("bleu", "rouge_l", "cider")
#: Keys of the scores returned by :meth:`CaptionEvaluator.compute` with the default metrics.
METRIC_NAMES: tuple[str, ...] = tuple(key for name in DEFAULT_METRICS for key in METRICS[name])


def resolve_metrics(names: str | Iterable[str]) -> tuple[str, ...]:
    """Validate a choice of metrics and put it in the COCO order.

    Args:
        names: Metric names (``"bleu"``, ``"meteor"``, ``"rouge_l"``, ``"cider"``, ``"spice"``, or a score key
            such as ``"bleu_4"``, which selects its metric), as a list or one comma-separated string.

    Returns:
        The metric names, each once, in the order of :data:`METRICS`.

    Raises:
        ValueError: If a name is unknown or none is given.
    """
    if isinstance(names, str):
        names = names.split(",")
    aliases = {key: metric for metric, keys in METRICS.items() for key in (metric, *keys)}
    chosen = set()
    for name in names:
        name = name.strip().lower().replace("-", "_")
        if name not in aliases:
            raise ValueError(f"unknown caption metric {name!r}; choose from {', '.join(METRICS)}")
        chosen.add(aliases[name])
    if not chosen:
        raise ValueError(f"no caption metric given; choose from {', '.join(METRICS)}")
    return tuple(metric for metric in METRICS if metric in chosen)


class CaptionEvaluator:
    """Accumulates predicted and reference captions over batches and computes the COCO caption metrics.

    Each image key (any hashable: a COCO image id, a file name, a dataset index) may be added once between
    :meth:`reset` calls; the evaluated set is the set of predicted keys.

    Args:
        metrics: Which metrics to compute (see :func:`resolve_metrics`); by default BLEU, ROUGE-L and
            CIDEr-D. Asking for METEOR starts its jar at once (it loads for tens of seconds in the
            background, once per process), so a missing Java or pycocoevalcap is reported here.

    Raises:
        ValueError: If a metric name is unknown.
        MetricUnavailableError: If METEOR or SPICE is asked for and Java, pycocoevalcap or (SPICE) the
            CoreNLP models are missing.

    Example:
        >>> evaluator = CaptionEvaluator()
        >>> evaluator.update({1: "a dog runs"}, {1: ["A dog runs.", "A dog is running."]})
        >>> round(evaluator.compute()["bleu_1"], 4)
        1.0
    """

    def __init__(self, metrics: str | Iterable[str] = DEFAULT_METRICS) -> None:
        self.metrics = resolve_metrics(metrics)
        if "meteor" in self.metrics:
            from vision2seq.evaluation.meteor import meteor_scorer

            meteor_scorer()
        if "spice" in self.metrics:
            from vision2seq.evaluation.spice import spice_jar

            spice_jar()
        self._keys: list[Hashable] = []
        self._seen: set[Hashable] = set()
        self._candidates: list[list[str]] = []
        self._references: list[list[list[str]]] = []

    def reset(self) -> None:
        """Forget everything added so far."""
        self._keys.clear()
        self._seen.clear()
        self._candidates.clear()
        self._references.clear()

    def __len__(self) -> int:
        """Number of images added so far."""
        return len(self._keys)

    def update(
        self, predictions: Mapping[Hashable, str], references: Mapping[Hashable, Sequence[str]]
    ) -> None:
        """Add one batch of predictions with their references.

        Args:
            predictions: Raw predicted caption per image key.
            references: Raw reference captions per image key; must cover every key of ``predictions`` (extra
                keys are ignored).

        Raises:
            ValueError: If a prediction is not a string, a predicted key has no (or an empty list of)
                references, or a key was already added since the last :meth:`reset`. Nothing of the batch is
                added then.
        """
        batch_keys: list[Hashable] = []
        batch_seen: set[Hashable] = set()
        batch_candidates: list[list[str]] = []
        batch_references: list[list[list[str]]] = []
        for key, prediction in predictions.items():
            if key in self._seen or key in batch_seen:
                raise ValueError(f"image {key!r} was already added; call reset() before a new evaluation")
            if not isinstance(prediction, str):
                raise ValueError(
                    f"the prediction for image {key!r} is {type(prediction).__name__}, not a string"
                )
            refs = references.get(key)
            if refs is None:
                raise ValueError(f"the prediction for image {key!r} has no references")
            if isinstance(refs, str) or not refs:
                raise ValueError(f"image {key!r} needs a non-empty list of reference captions, got {refs!r}")
            batch_keys.append(key)
            batch_seen.add(key)
            batch_candidates.append(ptb_tokenize(prediction))
            batch_references.append([ptb_tokenize(ref) for ref in refs])
        self._keys.extend(batch_keys)
        self._seen.update(batch_keys)
        self._candidates.extend(batch_candidates)
        self._references.extend(batch_references)

    def compute(self, per_image: bool = False) -> dict:
        """Score everything added since the last :meth:`reset`.

        Args:
            per_image: Also return ``per_image``: image key -> its scores under the same metric names.
                Per-image BLEU is sentence BLEU with the same smoothing (as pycocoevalcap reports it);
                per-image CIDEr-D still uses the document frequencies of the whole evaluated set.

        Returns:
            The chosen metrics' scores as floats (``bleu_1`` .. ``bleu_4``, ``meteor``, ``rouge_l``,
            ``cider`` (CIDEr-D), ``spice``), plus ``per_image`` if asked.

        Raises:
            ValueError: If nothing was added.
            MetricUnavailableError: If a jar failed.
        """
        if not self._keys:
            raise ValueError("no captions to evaluate: call update() with at least one prediction first")
        columns = self._columns()  # score key -> (corpus score, per-image scores)
        scores: dict = {key: float(score) for key, (score, _) in columns.items()}
        if per_image:
            scores["per_image"] = {
                key: {name: float(values[i]) for name, (_, values) in columns.items()}
                for i, key in enumerate(self._keys)
            }
        return scores

    def _columns(self) -> dict[str, tuple[float, list[float]]]:
        """Each chosen metric's corpus score and per-image scores, by score key, in the COCO order."""
        columns: dict[str, tuple[float, list[float]]] = {}
        # BLEU and CIDEr-D split the tokenized caption on any whitespace, ROUGE-L on spaces only; the jars
        # get the tokenized captions as text, as pycocoevalcap passes them.
        words = [ptb_words(c) for c in self._candidates]
        ref_words = [[ptb_words(r) for r in refs] for refs in self._references]
        texts = [" ".join(c) for c in self._candidates]
        ref_texts = [[" ".join(r) for r in refs] for refs in self._references]
        if "bleu" in self.metrics:
            bleu = corpus_bleu(words, ref_words, max_n=4)
            for n in range(1, 5):
                columns[f"bleu_{n}"] = (bleu.scores[n - 1], [b[n - 1] for b in bleu.per_sentence])
        if "meteor" in self.metrics:
            from vision2seq.evaluation.meteor import meteor_scorer

            meteor = meteor_scorer().score(texts, ref_texts)
            columns["meteor"] = (meteor.score, meteor.per_image)
        if "rouge_l" in self.metrics:
            rouge = corpus_rouge_l(self._candidates, self._references)
            columns["rouge_l"] = (rouge.score, rouge.per_image)
        if "cider" in self.metrics:
            cider = corpus_cider(words, ref_words)
            columns["cider"] = (cider.score, cider.per_image)
        if "spice" in self.metrics:
            from vision2seq.evaluation.spice import spice_score

            spice = spice_score(texts, ref_texts)
            columns["spice"] = (spice.score, spice.per_image)
        return columns


def score_captions(
    predictions: Mapping[Hashable, str],
    references: Mapping[Hashable, Sequence[str]],
    per_image: bool = False,
    metrics: str | Iterable[str] = DEFAULT_METRICS,
) -> dict:
    """Score predicted captions against references in one call (see :class:`CaptionEvaluator`).

    Args:
        predictions: Raw predicted caption per image key.
        references: Raw reference captions per image key, covering every predicted key.
        per_image: Also return per-image scores.
        metrics: Which metrics to compute (see :func:`resolve_metrics`).

    Returns:
        The scores of :meth:`CaptionEvaluator.compute`.
    """
    evaluator = CaptionEvaluator(metrics)
    evaluator.update(predictions, references)
    return evaluator.compute(per_image=per_image)
