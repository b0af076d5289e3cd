"""Test-suite settings: the models under test are tiny, and on a small shared CPU two OpenMP threads
spend more time waiting on each other than computing, so torch runs on one thread here and in every
subprocess the tests start (CLI runs, torchrun workers, notebook kernels)."""

import os

import torch

os.environ["OMP_NUM_THREADS"] = "1"
torch.set_num_threads(1)
