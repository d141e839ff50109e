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

import contextlib
import hashlib
import importlib.util
import inspect
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "CHECK_SECONDS",
    "MODEL_PARAMETERS",
    "STUDY_PATH_ENV",
    "check",
    "check_all",
    "load",
    "module_digest",
    "module_of",
    "one_line",
    "use_study_path",
]

#: The environment variable through which jobs find the folders of the study's own modules.
STUDY_PATH_ENV = "REGBENCH_STUDY_PATH"

#: What a custom model's function receives before its ``args``: the shape of one example
#: (without the batch axis) and the number of classes.
MODEL_PARAMETERS = ("input_shape", "n_classes")

#: Seconds a study's own modules may take, in all, to import and to pass their probes
#: (:func:`check_all`): a module that waits for something at import is refused after them.
CHECK_SECONDS = 10.0
# Seconds the checking process may take to import TensorFlow and Keras first, which
# is not the study's doing (a few seconds; many more on a busy machine).
_START_SECONDS = 120.0

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
        raise ValueError(f"importing the package of {name} raised {one_line(error)}") from None
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
    except (Exception, SystemExit, KeyboardInterrupt) as error:
        # sys.exit() or a KeyboardInterrupt at import is a failed import too, named as one.
        del sys.modules[name]
        raise ValueError(f"importing {name} ({path}) raised {one_line(error)}") from None
    _executed[name] = digest
    return module


def one_line(error: BaseException) -> str:
    """An exception as one line of at most 120 characters: its type and message."""
    text = f"{type(error).__name__}: {error}".replace("\n", " ").removesuffix(": ")
    return text if len(text) <= 120 else text[:119] + "…"


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


def check_all(items: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Check a study's functions in a child process with a time limit; each module's digest.

    ``items`` are the functions a study names, each a mapping with ``where``
    (the key, e.g. ``models.own``), ``function``, ``args``, ``kind`` (``model``
    or ``penalty``), ``block`` (the model's entry or the penalty's ``custom``
    block) and, for a model, ``inputs``: the (example shape, classes) of each
    dataset it is paired with, where known. The child (:mod:`regbench.probe`)
    imports each module, checks the signature and calls the function on a
    probe as a training job would. An exception, ``sys.exit``, a
    ``KeyboardInterrupt``, a crash or more than :data:`CHECK_SECONDS` of the
    study's code become one ValueError naming the key and the function; this
    process never runs the study's code.
    """
    if not items:
        return {}
    read_end, write_end = os.pipe()
    with tempfile.TemporaryFile() as errors:
        child = subprocess.Popen(
            [sys.executable, "-m", "regbench.probe", str(write_end)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=errors,
            pass_fds=(write_end,),
            # Its own process group, so that whatever the study's code starts ends with it.
            start_new_session=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        )
        os.close(write_end)
        try:
            assert child.stdin is not None
            child.stdin.write(json.dumps(list(items)).encode("utf-8"))
            child.stdin.close()
            return _follow(child, read_end, items, errors)
        finally:
            os.close(read_end)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            child.wait()


def _follow(
    child: subprocess.Popen[bytes], fd: int, items: Sequence[Mapping[str, Any]], errors: Any
) -> dict[str, str]:
    """Read the child's progress until it reports a result, fails, dies or runs out of time."""
    buffer = b""
    deadline = time.monotonic() + _START_SECONDS
    current: Mapping[str, Any] | None = None
    while True:
        while b"\n" not in buffer:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(fd, 65536) if ready else None
            if chunk is None or chunk == b"":
                where = items[0] if current is None else current
                raise ValueError(
                    _stopped(
                        where, child, errors, timed_out=chunk is None, started=current is not None
                    )
                )
            buffer += chunk
        line, buffer = buffer.split(b"\n", 1)
        kind, _, rest = line.decode("utf-8").partition(" ")
        if kind == "ready":
            deadline = time.monotonic() + CHECK_SECONDS
        elif kind == "start":
            current = items[int(rest)]
        elif kind == "fail":
            assert current is not None
            raise ValueError(f"{current['where']}.function: {json.loads(rest)}")
        elif kind == "done":
            return dict(json.loads(rest))


def _stopped(
    item: Mapping[str, Any],
    child: subprocess.Popen[bytes],
    errors: Any,
    *,
    timed_out: bool,
    started: bool,
) -> str:
    """Why the child gave no result: out of time, or ended (with the last line it printed)."""
    where = f"{item['where']}.function: "
    if timed_out and started:
        return (
            f"{where}importing and checking {item['function']} took over {CHECK_SECONDS:g} s "
            "(does its module wait for something when imported?)"
        )
    if timed_out:
        return f"{where}the check of {item['function']} took over {_START_SECONDS:g} s to start"
    status = child.wait()
    errors.seek(0)
    last = next(
        (x for x in reversed(errors.read().decode("utf-8", "replace").splitlines()) if x.strip()),
        "",
    )
    return f"{where}checking {item['function']} ended its process (exit status {status})" + (
        f": {last.strip()[:100]}" if last else ""
    )
