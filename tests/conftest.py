"""Test-suite settings: the models under test are tiny, and on a small shared CPU two OpenMP threads
spend more time waiting on each other than computing, so torch runs on one thread here and in every
subprocess the tests start (CLI runs, torchrun workers, notebook kernels)."""

import os

import torch

os.environ["OMP_NUM_THREADS"] = "1"
torch.set_num_threads(1)


# CI runs the property tests with a fixed seed, so a run is reproducible; locally every run explores new
# examples (a failure prints the example and a @reproduce_failure line to pin it as a regression test).
from hypothesis import settings as _hypothesis_settings  # noqa: E402

_hypothesis_settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    _hypothesis_settings.load_profile("ci")
