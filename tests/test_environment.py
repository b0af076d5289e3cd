"""A broken installation is one line saying what to reinstall (exit 3), not a traceback.

The failures are simulated with modules that raise what the real ones raise: a torchvision built for
another torch (``operator torchvision::nms does not exist``), a compiled package built for another NumPy,
a missing package.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vision2seq import environment
from vision2seq.__main__ import EXIT_ENVIRONMENT, main

ROOT = Path(__file__).resolve().parents[1]
NMS = "operator torchvision::nms does not exist"


def fake_package(folder: Path, name: str, raises: str) -> Path:
    (folder / name).mkdir(parents=True)
    (folder / name / "__init__.py").write_text(f"raise {raises}\n")
    return folder


def test_torchvision_built_for_another_torch_is_one_line_in_a_real_process(tmp_path):
    fake = fake_package(tmp_path, "torchvision", f"RuntimeError({NMS!r})")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake), str(ROOT)]), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "vision2seq", "demo", "--output-dir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == EXIT_ENVIRONMENT == 3
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("vision2seq demo: error: torchvision ")
    assert NMS in lines[0] and "pip install --force-reinstall torch torchvision" in lines[0]
    assert "--index-url https://download.pytorch.org/whl/cpu" in lines[0]
    assert not (tmp_path / "demo").exists()  # stopped before any work


@pytest.mark.parametrize(
    ("raises", "expected"),
    [
        ("ImportError('numpy.core.multiarray failed to import')", "was built for another NumPy"),
        ("AttributeError('_ARRAY_API not found')", "was built for another NumPy"),
        ("OSError('libavcodec.so.61: cannot open shared object file')", "fails to import (OSError: libav"),
    ],
)
def test_other_import_failures_name_the_package_and_the_fix(tmp_path, monkeypatch, capsys, raises, expected):
    monkeypatch.syspath_prepend(str(fake_package(tmp_path, "v2s_broken_ext", raises)))
    monkeypatch.setitem(environment.REQUIRED, "v2s_broken_ext", "v2s-broken-ext")
    assert main(["demo", "--output-dir", str(tmp_path / "demo")]) == EXIT_ENVIRONMENT
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("vision2seq demo: error: v2s-broken-ext ")
    assert expected in line and "pip install --force-reinstall v2s-broken-ext" in line
    sys.modules.pop("v2s_broken_ext", None)


def test_a_missing_package_says_which_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)  # what `import av` meets when PyAV is not installed
    problem = environment.environment_problem({"av": "av"})
    assert problem == "the package av is not installed: pip install av"


def test_a_working_installation_passes():
    assert environment.environment_problem() is None


def test_score_captions_does_not_wait_for_torch():
    assert set(environment.required_for("score-captions")) == {"yaml", "numpy"}
    assert {"torch", "torchvision", "av"} <= set(environment.required_for("caption"))
