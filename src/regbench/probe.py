"""The child process that checks a study's own functions: ``python -m regbench.probe FD``.

:func:`regbench.custom.check_all` starts it, sends the functions to check
as JSON on its standard input, and reads its progress from file descriptor
``FD``: ``ready`` once TensorFlow and Keras are imported (before any of the
study's code runs), ``start <i>`` before the i-th function, then ``fail
<json>`` with the message for the first function that fails, or ``done
<json>`` with each module's source digest. A module that hangs, exits or is
interrupted at import, or a function that breaks its contract, ends only
this process; the parent's time limit covers the rest.

Each function is imported and its signature checked
(:func:`regbench.custom.check`); then it is called as a training job would
call it, through :func:`regbench.models.build_model`, on a probe: a
regularizer's penalty on a small model with the kinds of layer (dense,
convolutional) it reaches in the study (it must return a finite scalar for
each kernel, bias or activation it is given), a model function on the input shape
and classes of each dataset it is paired with, where the dataset's spec says
them (:func:`regbench.shapes.known_data`).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from typing import Any, NoReturn

from regbench import custom

__all__ = ["main"]

# The small models a penalty is tried on, 3 classes: an MLP (4 features, 3 hidden units)
# where it reaches dense layers only, else a CNN (6 x 6 x 1 images, 2 filters, 3 units).
_PROBE_MLP = {"name": "probe", "type": "mlp", "units": [3], "activation": "relu"}
_PROBE_CNN = {
    **_PROBE_MLP,
    "type": "cnn",
    "filters": [2],
    "kernel_size": 3,
    "pool_size": 2,
    "padding": "same",
}


def main(argv: list[str]) -> None:
    """Check the functions read from standard input, reporting to the descriptor in ``argv``."""
    report = os.fdopen(int(argv[1]), "w", buffering=1)
    items = json.load(sys.stdin)
    # Imported before "ready", so that the study's time limit does not pay for them.
    import numpy as np

    from regbench import models

    report.write("ready\n")
    digests: dict[str, str] = {}
    for index, item in enumerate(items):
        report.write(f"start {index}\n")
        # Every failure, SystemExit and KeyboardInterrupt included, is one message.
        try:
            digest = custom.check(item["function"], item["args"], model=item["kind"] == "model")
        except BaseException as error:
            _fail(report, str(error) if isinstance(error, ValueError) else custom.one_line(error))
        try:
            if item["kind"] == "model":
                for shape, classes in item["inputs"]:
                    _probe_model(models, np, item, digest, tuple(shape), classes)
            else:
                _probe_penalty(models, np, item, digest)
        except BaseException as error:
            _fail(report, _message(item, error))
        digests[custom.module_of(item["function"])] = digest
    report.write("done " + json.dumps(digests) + "\n")
    report.flush()
    os._exit(0)


def _fail(report: Any, message: str) -> NoReturn:
    report.write("fail " + json.dumps(message) + "\n")
    report.flush()
    os._exit(0)  # Neither the study's atexit handlers nor TensorFlow's teardown.


class _BrokenContract(Exception):
    """A function ran but returned what a training job cannot use."""


def _message(item: Mapping[str, Any], error: BaseException) -> str:
    """One line for a failed probe, without the key regbench.config puts in front of it."""
    text = str(error)
    if isinstance(error, _BrokenContract):
        return text
    if isinstance(error, ValueError) and text.startswith(("models.", "regularizers.")):
        # regbench.models found the contract broken and named the key; config names it once.
        return text.split(".function: ", 1)[-1]
    return f"calling {item['function']} on a probe raised {custom.one_line(error)}"


def _probe_model(
    models: Any, np: Any, item: Mapping[str, Any], digest: str, shape: tuple[int, ...], n: int
) -> None:
    """Build the model for one dataset's input and run it on two examples."""
    spec = {**item["block"], "code": digest}
    built = models.build_model(spec, {"name": "none"}, shape, n)
    outputs = np.asarray(built(np.zeros((2, *shape), dtype="float32"), training=False))
    width = 1 if n == 2 else n
    if outputs.shape != (2, width):
        raise _BrokenContract(
            f"{item['function']} built a model giving outputs of shape {outputs.shape[1:]} for "
            f"input {shape}; expected ({width},)"
        )


def _probe_penalty(models: Any, np: Any, item: Mapping[str, Any], digest: str) -> None:
    """Put the penalty on the kinds of layer it reaches in the study, in a small model; each
    value must be a finite scalar."""
    touches = item["touches"]
    model, shape = (_PROBE_MLP, (4,)) if touches == ["dense"] else (_PROBE_CNN, (6, 6, 1))
    layers = touches[0] if len(touches) == 1 else "all"
    block = {**item["block"], "layers": layers, "code": digest}
    built = models.build_model(model, {"name": "probe", "custom": block}, shape, 3)
    features = np.random.default_rng(0).normal(size=(2, *shape)).astype("float32")
    built(features, training=True)
    for loss in built.losses:
        value = np.asarray(loss)
        if value.size != 1 or not np.isfinite(value).all():
            what = f"shape {value.shape}" if value.size != 1 else f"{value.item()!r}"
            raise _BrokenContract(
                f"the penalty from {item['function']} gave {what} for a "
                f"{block['penalizes']} of the probe; expected a finite scalar"
            )


if __name__ == "__main__":
    main(sys.argv)
