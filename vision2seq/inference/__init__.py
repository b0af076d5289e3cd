"""Inference from Python: ``Captioner`` (images), ``VideoCaptioner`` (clips), ``load_captioner`` (the one
a checkpoint needs) and ``VideoClassifier``, thin entry points over the one ``predictor.Predictor``,
which runs the restored task's ``predict_step``.

``from vision2seq.inference import Captioner`` imports only what the named class needs.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "Captioner": "captioner",
    "CaptionResult": "captioner",
    "VideoCaptioner": "video_captioner",
    "load_captioner": "video_captioner",
    "VideoClassifier": "classifier",
    "VideoPrediction": "classifier",
    "Predictor": "predictor",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
