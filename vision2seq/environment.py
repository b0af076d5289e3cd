"""Import-time failures of the installed packages, diagnosed in one line that says what to reinstall.

A torchvision wheel built for another torch fails at ``import torchvision`` with ``RuntimeError:
operator torchvision::nms does not exist``; a compiled package built for another NumPy fails with
``_ARRAY_API not found`` or ``numpy.dtype size changed``; a missing package with ``ModuleNotFoundError``.
None of these is the user's input, and the traceback does not say what to do. The CLI imports the
packages every command needs before any work (:func:`environment_problem`) and turns a failure into one
stderr line and exit status 3.
"""

from __future__ import annotations

import importlib
from importlib import metadata

__all__ = ["REQUIRED", "describe_import_failure", "environment_problem", "required_for"]

#: Module -> the pip package that provides it, in import order (torch before what is built on it).
REQUIRED: dict[str, str] = {
    "yaml": "pyyaml",
    "numpy": "numpy",
    "PIL": "pillow",
    "torch": "torch",
    "torchvision": "torchvision",
    "av": "av",
}

# Commands that never run a model: importing torch would only slow them down (seconds).
_LIGHT_COMMANDS: dict[str, tuple[str, ...]] = {"score-captions": ("yaml", "numpy")}

CPU_INDEX = "https://download.pytorch.org/whl/cpu"
_PAIR = f"pip install --force-reinstall torch torchvision (without a GPU, add --index-url {CPU_INDEX})"
_NUMPY_ABI = ("_ARRAY_API", "compiled using NumPy", "numpy.dtype size changed", "numpy.core.multiarray")


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def describe_import_failure(module: str, exc: BaseException) -> str:
    """One line: which package failed to import, why (the exception's first line) and the command to fix it.

    Args:
        module: the module whose import failed (a key of :data:`REQUIRED`).
        exc: what the import raised.
    """
    package = REQUIRED.get(module, module)
    first = (str(exc).strip().splitlines() or [""])[0]
    why = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    if isinstance(exc, ModuleNotFoundError) and exc.name == module:
        return f"the package {package} is not installed: pip install {package}"
    if module == "torchvision" or "torchvision::" in first:
        return (
            f"torchvision {_version('torchvision')} does not work with torch {_version('torch')} ({why}); "
            f"reinstall them as a matching pair: {_PAIR}"
        )
    if any(marker in first for marker in _NUMPY_ABI):
        return (
            f"{package} {_version(package)} was built for another NumPy than numpy {_version('numpy')} "
            f"({why}); reinstall it for this numpy: pip install --force-reinstall {package}"
        )
    if module == "torch":
        return f"torch {_version('torch')} fails to import ({why}); reinstall it: {_PAIR}"
    reinstall = f"pip install --force-reinstall {package}"
    return f"{package} {_version(package)} fails to import ({why}); reinstall it: {reinstall}"


def environment_problem(modules: dict[str, str] | None = None) -> str | None:
    """Import the packages every command needs; the one-line diagnosis of the first that fails, or None.

    Args:
        modules: module -> pip package to check (default: :data:`REQUIRED`).
    """
    for module in modules or REQUIRED:
        try:
            importlib.import_module(module)
        except Exception as exc:  # any import-time failure (RuntimeError, OSError, ...) is the install's
            return describe_import_failure(module, exc)
    return None


def required_for(command: str) -> dict[str, str]:
    """The modules (-> pip packages) the CLI command ``command`` needs before it starts."""
    light = _LIGHT_COMMANDS.get(command)
    return {m: REQUIRED[m] for m in light} if light else dict(REQUIRED)
