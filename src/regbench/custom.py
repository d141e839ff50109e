"""A study's own regularizers and models: find, check and fingerprint the functions it names.

A study names a function as ``"module:function"``. Its module is looked up
in the study file's folder first, then on ``PYTHONPATH`` and among the
installed packages. It is imported when the study is loaded, so a module or
function that is missing, or that cannot be called as the contract says,
stops Snakemake before any job runs with one message.

The digest of the module's source file is part of the spec of every run that
uses one of its functions, so editing that file retrains exactly those runs
(and editing another file, even one the module imports, retrains nothing).
The module is executed from the very bytes that were digested, never from a
cached ``.pyc`` that may predate an edit, and a training job refuses a module
whose file no longer has the digest its spec names.

Jobs find the study's folder through ``REGBENCH_STUDY_PATH``, which loading
the study sets: every job Snakemake starts inherits it, warm workers and
SLURM jobs included, and unlike ``PYTHONPATH`` Snakemake keeps it for jobs
in conda environments. This module imports neither TensorFlow nor Keras;
the functions it loads may.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "MODEL_PARAMETERS",
    "STUDY_PATH_ENV",
    "check",
    "load",
    "module_digest",
    "module_of",
    "use_study_path",
]

#: The environment variable through which jobs find the folders of the study's own modules.
STUDY_PATH_ENV = "REGBENCH_STUDY_PATH"

#: What a custom model's function receives before its ``args``: the shape of one example
#: (without the batch axis) and the number of classes.
MODEL_PARAMETERS = ("input_shape", "n_classes")

# The digest of each module as this process executed it.
_executed: dict[str, str] = {}


def module_of(reference: str) -> str:
    """The module part of ``"module:function"``."""
    return reference.partition(":")[0]


def use_study_path(folders: Sequence[str | os.PathLike[str]]) -> None:
    """Make modules in ``folders`` importable here and in every job started from here."""
    known = os.environ.get(STUDY_PATH_ENV, "").split(os.pathsep)
    paths = [str(Path(folder).resolve()) for folder in folders]
    os.environ[STUDY_PATH_ENV] = os.pathsep.join(dict.fromkeys(p for p in [*paths, *known] if p))
    _on_sys_path()


def _on_sys_path() -> list[str]:
    """Put the study's folders first on ``sys.path``; return them."""
    folders = [p for p in os.environ.get(STUDY_PATH_ENV, "").split(os.pathsep) if p]
    for folder in reversed(folders):
        if folder in sys.path:
            sys.path.remove(folder)
        sys.path.insert(0, folder)
    return folders


def _find(name: str) -> tuple[Any, Path]:
    """Module ``name``'s import spec and source file; ValueError says where it was looked for."""
    folders = _on_sys_path()
    where = (
        f"modules are looked up in {', '.join(folders)} (the study file's folder), "
        if folders
        else "modules are looked up "
    ) + "on PYTHONPATH and among the installed packages"
    try:
        spec = importlib.util.find_spec(name)
    except ModuleNotFoundError:
        spec = None
    except Exception as error:  # Importing a parent package ran its code, which failed.
        raise ValueError(f"importing the package of {name} raised {_one_line(error)}") from None
    if spec is None:
        raise ValueError(f"cannot find module {name!r}; {where}")
    if spec.origin is None or not spec.origin.endswith(".py"):
        raise ValueError(
            f"module {name} has no Python source file ({spec.origin}); regbench fingerprints "
            "a study's functions by their module's source, so they must live in a .py file"
        )
    return spec, Path(spec.origin)


def module_digest(name: str) -> str:
    """The digest of module ``name``'s source file, as a run's spec records it."""
    return hashlib.sha256(_find(name)[1].read_bytes()).hexdigest()[:16]


def _execute(name: str) -> Any:
    """Module ``name`` executed from its source file's current bytes (not a cached .pyc)."""
    spec, path = _find(name)
    source = path.read_bytes()
    digest = hashlib.sha256(source).hexdigest()[:16]
    module = sys.modules.get(name)
    if module is not None and _executed.setdefault(name, digest) == digest:
        # Executed here from these bytes, or imported by other code (an installed package's
        # module, the study's module that another one imports): used as it is.
        return module
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        # What the import system would do, from the bytes just digested.
        exec(compile(source, str(path), "exec"), module.__dict__)
    except Exception as error:
        del sys.modules[name]
        raise ValueError(f"importing {name} ({path}) raised {_one_line(error)}") from None
    _executed[name] = digest
    return module


def _one_line(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}".replace("\n", " ")
    return text if len(text) <= 300 else text[:299] + "…"


def _function(reference: str) -> Callable[..., Any]:
    module_name, _, name = reference.partition(":")
    module = _execute(module_name)
    function = getattr(module, name, None)
    if function is None:
        raise ValueError(f"module {module_name} ({module.__file__}) has no function {name!r}")
    if not callable(function):
        raise ValueError(f"{reference} is a {type(function).__name__}, not a function")
    return function  # type: ignore[no-any-return]  # getattr gives Any; callable was checked


def check(reference: str, args: Mapping[str, Any], *, model: bool) -> str:
    """Import the function, check that it can be called as the contract says; its digest.

    A regularizer's function is called as ``function(**args)``, a model's as
    ``function(input_shape, n_classes, **args)``. Raises ValueError naming
    what is wrong: a module that cannot be found or fails to import, no such
    function, or a signature that does not take these arguments.
    """
    function = _function(reference)
    # The digest of the bytes just executed: what was checked is what the spec names.
    digest = _executed[module_of(reference)]
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return digest  # No signature to check (a builtin).
    fixed = MODEL_PARAMETERS if model else ()
    try:
        signature.bind(*fixed, **args)
    except TypeError as error:
        call = ", ".join([*fixed, "**args"])
        given = ", ".join(f"{k}={v!r}" for k, v in args.items()) or "no args"
        raise ValueError(
            f"{reference}{signature} cannot be called as {reference.partition(':')[2]}"
            f"({call}) with {given}: {error}"
        ) from None
    return digest


def load(reference: str, code: str) -> Callable[..., Any]:
    """The function ``reference`` names, from a module whose source has digest ``code``.

    Raises ValueError when the module's file changed since the study was
    loaded: the run's spec would then name other code than what trains.
    """
    function = _function(reference)
    now = _executed[module_of(reference)]
    if now != code:
        raise ValueError(
            f"the source of {module_of(reference)} changed since the study was loaded "
            f"(digest {now}, the run's spec names {code}); run snakemake again"
        )
    return function
