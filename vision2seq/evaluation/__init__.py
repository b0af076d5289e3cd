"""Model-independent evaluators: COCO caption metrics (BLEU, CIDEr-D, ROUGE-L) and classification accuracy."""

from vision2seq.evaluation.accuracy import ClassificationEvaluator
from vision2seq.evaluation.caption_metrics import CaptionEvaluator, score_captions
from vision2seq.evaluation.ptb_tokenizer import ptb_tokenize

__all__ = ["CaptionEvaluator", "ClassificationEvaluator", "ptb_tokenize", "score_captions"]
