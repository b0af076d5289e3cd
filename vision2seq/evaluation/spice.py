"""SPICE through the reference jar that pycocoevalcap ships (Java), when its Stanford CoreNLP models exist.

SPICE parses captions into scene graphs with Stanford CoreNLP 3.6.0, whose jars
(``stanford-corenlp-3.6.0.jar`` and ``stanford-corenlp-3.6.0-models.jar``, about 400 MB) pycocoevalcap
downloads into ``pycocoevalcap/spice/lib/`` the first time SPICE runs. This module never downloads: if the
jars are absent it says how to get them. When they are present it runs ``spice-1.0.jar`` exactly as
pycocoevalcap's ``Spice.compute_score`` does, on the PTB-tokenized captions: one run per call (the jar
caches parses on disk, so later runs over the same captions are faster).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from vision2seq.evaluation._common import CorpusScore, check_corpus
from vision2seq.evaluation.meteor import MetricUnavailableError, pycocoevalcap_dir

__all__ = ["spice_jar", "spice_score"]

_CORENLP_JARS = ("stanford-corenlp-3.6.0.jar", "stanford-corenlp-3.6.0-models.jar")


def spice_jar() -> Path:
    """Return the SPICE jar, checking that Java, pycocoevalcap and the CoreNLP models are there.

    Raises:
        MetricUnavailableError: If one is missing (the message says how to get it).
    """
    folder = pycocoevalcap_dir("SPICE") / "spice"
    missing = [name for name in _CORENLP_JARS if not (folder / "lib" / name).is_file()]
    if missing:
        raise MetricUnavailableError(
            f"SPICE needs the Stanford CoreNLP 3.6.0 models in {folder / 'lib'} "
            f"({', '.join(missing)} missing): "
            "run `python -m pycocoevalcap.spice.get_stanford_models` once with network access "
            "(or leave spice out of --metrics)"
        )
    return folder / "spice-1.0.jar"


def _as_float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan  # as pycocoevalcap: an image SPICE could not score is NaN


def spice_score(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> CorpusScore:
    """Compute SPICE (the F-score over all tuple types) of PTB-tokenized captions.

    Args:
        candidates: One tokenized candidate string per image.
        references: For each image, its tokenized reference strings.

    Returns:
        The mean over images (NaN if any image is NaN, as in the reference) and the per-image scores.

    Raises:
        MetricUnavailableError: If Java, pycocoevalcap or the CoreNLP models are missing, or the jar fails.
    """
    check_corpus(candidates, references, "SPICE")
    jar = spice_jar()
    items = [
        {"image_id": i, "test": hyp, "refs": list(refs)}
        for i, (hyp, refs) in enumerate(zip(candidates, references, strict=True))
    ]
    cache = Path(os.environ.get("VISION2SEQ_CACHE", Path.home() / ".cache" / "vision2seq")) / "spice"
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        in_file, out_file = Path(tmp) / "input.json", Path(tmp) / "output.json"
        in_file.write_text(json.dumps(items))
        command = ["java", "-jar", "-Xmx8G", jar.name, str(in_file), "-cache", str(cache)]
        command += ["-out", str(out_file), "-subset", "-silent"]
        run = subprocess.run(command, cwd=jar.parent, capture_output=True, text=True)
        if run.returncode != 0 or not out_file.is_file():
            lines = (run.stderr or run.stdout).strip().splitlines()
            raise MetricUnavailableError(f"the SPICE jar failed: {lines[-1] if lines else run.returncode}")
        results = json.loads(out_file.read_text())
    by_id = {item["image_id"]: _as_float(item["scores"]["All"]["f"]) for item in results}
    per_image = [by_id[i] for i in range(len(items))]
    return CorpusScore(score=sum(per_image) / len(per_image), per_image=per_image)
