"""vision2seq: pretrained torchvision CNN encoders with LSTM decoders for captions and video labels."""

__version__ = "0.1.0"

__all__ = ["__version__", "set_threads"]


def set_threads(n: int | None = None, workers: int = 0) -> int:
    """Choose how many CPU threads torch uses in this process; returns the number set.

    ``set_threads()`` makes the command line's automatic choice (the CPUs left after ``workers`` loader
    processes, the current load and one spare core: one thread on a 2-core machine); ``set_threads(n)``
    sets ``n``. The Python entry points (``Captioner``, ``VideoCaptioner``, ``VideoClassifier``,
    ``evaluate_checkpoint``, the ``vision2seq.synthetic`` helpers) make the automatic choice by
    themselves once per process unless the count was chosen already (this function, ``OMP_NUM_THREADS``,
    or a ``torch.set_num_threads`` that differs from torch's default); see docs/performance.md, "Threads
    and loader workers".
    """
    # Imported here so that `import vision2seq` (and `vision2seq --help`) does not import torch.
    from vision2seq.resources import set_threads as _set_threads

    return _set_threads(n, workers)
