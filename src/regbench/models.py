"""Keras model builders with composable regularization pieces.

regbench builds MLPs and CNNs itself; a custom model is built by the study's
own function (:mod:`regbench.custom`). Either way the regularizer's pieces
go where they apply: penalties and norm constraints on the chosen hidden
layers' weights, noise, dropout and batch normalization as layers after
them (regbench's own models only), augmentation and input noise before the
model, decoupled weight decay in the optimizer and label smoothing in the
objective's cross-entropy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import keras
from keras import layers

from regbench import custom
from regbench.topology import INPUTS, hidden_activations, hidden_layer_kinds, select_layers

__all__ = [
    "accuracy_function",
    "build_model",
    "compile_model",
    "decayed_kernels",
    "hidden_layers",
    "loss_function",
    "make_optimizer",
    "penalty",
    "smoothing",
]

#: Keras's weight-carrying layers that count as a custom model's dense or convolutional ones.
_DENSE = (layers.Dense,)
_CONV = (layers.Conv1D, layers.Conv2D, layers.Conv3D)


def penalty(spec: Mapping[str, Any] | None) -> keras.regularizers.Regularizer | None:
    """The Keras regularizer for an ``{l1, l2}`` block, or None when both are zero."""
    if not spec or (spec["l1"] == 0 and spec["l2"] == 0):
        return None
    return keras.regularizers.L1L2(l1=spec["l1"], l2=spec["l2"])


class _Sum(keras.regularizers.Regularizer):  # type: ignore[misc]  # Keras is untyped (Any)
    """Two penalties on one weight, as one regularizer (Keras takes one per weight)."""

    def __init__(self, first: Callable[[Any], Any], second: Callable[[Any], Any]) -> None:
        self.first, self.second = first, second

    def __call__(self, x: Any) -> Any:
        return self.first(x) + self.second(x)


def _combined(*penalties: Callable[[Any], Any] | None) -> Callable[[Any], Any] | None:
    found = [p for p in penalties if p is not None]
    if not found:
        return None
    total = found[0]
    for one in found[1:]:
        total = _Sum(total, one)
    return total


class _LayerPieces:
    """What each chosen hidden layer gets: its penalties and its kernel's norm constraint."""

    def __init__(self, regularizer: Mapping[str, Any], kinds: list[str]) -> None:
        where = f"regularizers.{regularizer['name']}"
        self.regularizer, self.kinds = regularizer, kinds
        self.chosen = {
            piece: set(select_layers(body["layers"], kinds, f"{where}.{piece}"))
            for piece, body in regularizer.items()
            if isinstance(body, Mapping) and "layers" in body
        }
        self.own = _custom_penalty(regularizer)

    def on(self, piece: str, index: int) -> bool:
        """Whether ``piece`` applies to hidden layer ``index``."""
        return index in self.chosen.get(piece, set())

    def weight_options(self, index: int, kernel_rank: int) -> dict[str, Any]:
        """The Keras layer options for hidden layer ``index``: regularizers and constraint."""
        reg = self.regularizer
        own = self.own if self.on("custom", index) else None
        where = reg["custom"]["penalizes"] if own is not None else None

        def mine(piece: str) -> Any:
            return penalty(reg[piece]) if self.on(piece, index) else None

        constraint = None
        if self.on("max_norm", index):
            # Each unit's incoming weights: every kernel axis but the last (the units).
            axis = 0 if kernel_rank == 2 else list(range(kernel_rank - 1))
            constraint = keras.constraints.MaxNorm(reg["max_norm"]["value"], axis=axis)
        return {
            "kernel_regularizer": _combined(mine("kernel"), own if where == "kernel" else None),
            "bias_regularizer": _combined(mine("bias"), own if where == "bias" else None),
            "activity_regularizer": _combined(
                mine("activity"), own if where == "activity" else None
            ),
            "kernel_constraint": constraint,
        }


def _custom_penalty(regularizer: Mapping[str, Any]) -> Callable[[Any], Any] | None:
    """The penalty the study's own function returns, checked to be callable."""
    block = regularizer.get("custom")
    if block is None:
        return None
    made = custom.load(block["function"], block["code"])(**block["args"])
    if not callable(made):
        raise ValueError(
            f"regularizers.{regularizer['name']}.custom.function: {block['function']} returned "
            f"{type(made).__name__}, not a penalty (a callable from a tensor to a scalar)"
        )
    return made  # type: ignore[no-any-return]  # a user's function returns Any; checked callable


def build_model(
    model: Mapping[str, Any],
    regularizer: Mapping[str, Any],
    input_shape: tuple[int, ...],
    n_classes: int,
) -> keras.Model:
    """Build an MLP, a CNN or a custom model carrying the regularizer's pieces.

    Hidden layers are numbered convolutions first, then dense layers; each
    piece's ``layers`` setting picks which of them it applies to. Batch
    normalization sits between a layer's linear part and its activation;
    Gaussian noise, spatial dropout and dropout follow the activation (and
    the pooling, for convolutions), in that order. Augmentation and input
    noise come first, on the inputs.
    """
    inputs = keras.Input(shape=input_shape, name="features")
    x = _input_pieces(inputs, regularizer)
    if model["type"] == "custom":
        return _custom_model(model, regularizer, inputs, x, input_shape, n_classes)
    kinds = hidden_layer_kinds(model)
    pieces = _LayerPieces(regularizer, kinds)
    widths = [*model.get("filters", []), *model["units"]]
    activations = hidden_activations(model)
    if model["type"] == "mlp" and len(input_shape) > 1:
        x = layers.Flatten(name="flatten_input")(x)
    for index, (kind, width) in enumerate(zip(kinds, widths, strict=True)):
        if kind == "dense" and index > 0 and kinds[index - 1] == "conv":
            x = layers.Flatten(name="flatten")(x)
        options = {
            **pieces.weight_options(index, 4 if kind == "conv" else 2),
            "activation": None if pieces.on("batch_norm", index) else activations[index],
            "name": f"hidden{index}_{kind}",
        }
        if kind == "conv":
            x = layers.Conv2D(width, model["kernel_size"], padding=model["padding"], **options)(x)
        else:
            x = layers.Dense(width, **options)(x)
        if pieces.on("batch_norm", index):
            x = layers.BatchNormalization(name=f"hidden{index}_batch_norm")(x)
            x = layers.Activation(activations[index], name=f"hidden{index}_activation")(x)
        if kind == "conv" and model.get("pool", [True] * len(kinds))[index]:
            x = layers.MaxPooling2D(model["pool_size"], name=f"hidden{index}_pool")(x)
        x = _after_layer(x, regularizer, pieces, index)
    if kinds and kinds[-1] == "conv":
        x = layers.Flatten(name="flatten")(x)
    if n_classes == 2:
        outputs = layers.Dense(1, activation="sigmoid", name="output")(x)
    else:
        outputs = layers.Dense(n_classes, activation="softmax", name="output")(x)
    return keras.Model(inputs, outputs, name=f"{model['name']}__{regularizer['name']}")


def _after_layer(x: Any, regularizer: Mapping[str, Any], pieces: _LayerPieces, index: int) -> Any:
    """Noise, spatial dropout and dropout after hidden layer ``index``, where chosen."""
    if pieces.on("gaussian_noise", index):
        stddev = regularizer["gaussian_noise"]["stddev"]
        x = layers.GaussianNoise(stddev, name=f"hidden{index}_noise")(x)
    if pieces.on("spatial_dropout", index):
        rate = regularizer["spatial_dropout"]["rate"]
        x = layers.SpatialDropout2D(rate, name=f"hidden{index}_spatial_dropout")(x)
    if pieces.on("dropout", index):
        x = layers.Dropout(regularizer["dropout"]["rate"], name=f"hidden{index}_dropout")(x)
    return x


def _input_pieces(x: Any, regularizer: Mapping[str, Any]) -> Any:
    """Augmentation (flip, rotate, zoom, translate), then input noise: training only."""
    augment = regularizer.get("augmentation", {})
    if "flip" in augment:
        x = layers.RandomFlip(augment["flip"], name="augment_flip")(x)
    if "rotate" in augment:
        x = layers.RandomRotation(augment["rotate"], name="augment_rotate")(x)
    if "zoom" in augment:
        x = layers.RandomZoom(augment["zoom"], name="augment_zoom")(x)
    if "translate" in augment:
        shift = augment["translate"]
        x = layers.RandomTranslation(shift, shift, name="augment_translate")(x)
    noise = regularizer.get("gaussian_noise")
    if noise is not None and noise["layers"] == INPUTS:
        x = layers.GaussianNoise(noise["stddev"], name="input_noise")(x)
    return x


def _custom_model(
    model: Mapping[str, Any],
    regularizer: Mapping[str, Any],
    inputs: Any,
    x: Any,
    input_shape: tuple[int, ...],
    n_classes: int,
) -> keras.Model:
    """The study's own model, its hidden layers carrying the pieces, after the input pieces.

    The function is called as ``function(input_shape, n_classes, **args)``
    and must return a Keras model from one input of that shape to the class
    probabilities: one sigmoid unit for two classes, else ``n_classes``
    softmax units. Its hidden layers are its dense and convolutional layers
    but the last (the output), in the order of ``model.layers``.
    """
    where = f"models.{model['name']}.function"
    function = custom.load(model["function"], model["code"])
    built = function(tuple(input_shape), n_classes, **model["args"])
    _check_custom_model(built, where, model["function"], input_shape, n_classes)
    hidden = hidden_layers(built)
    pieces = _LayerPieces(regularizer, [kind for kind, _ in hidden])
    for index, (_, layer) in enumerate(hidden):
        _attach(layer, pieces.weight_options(index, len(layer.kernel.shape)))
    if x is inputs:
        return built
    return keras.Model(inputs, built(x), name=f"{model['name']}__{regularizer['name']}")


def _check_custom_model(
    built: Any, where: str, reference: str, input_shape: tuple[int, ...], n_classes: int
) -> None:
    """One clear error when a study's model function breaks the contract."""
    units, activation = (1, "sigmoid") if n_classes == 2 else (n_classes, "softmax")
    expected = f"one input of shape {tuple(input_shape)} and {units} {activation} output(s)"
    if not isinstance(built, keras.Model):
        raise ValueError(f"{where}: {reference} returned {type(built).__name__}, not a Keras model")
    if len(built.inputs) != 1 or tuple(built.inputs[0].shape[1:]) != tuple(input_shape):
        shapes = [tuple(one.shape[1:]) for one in built.inputs]
        raise ValueError(
            f"{where}: {reference} built a model with inputs {shapes}; expected {expected}"
        )
    last = built.layers[-1]
    ends_right = getattr(last, "activation", None) is getattr(keras.activations, activation)
    if len(built.outputs) != 1 or tuple(built.outputs[0].shape[1:]) != (units,) or not ends_right:
        raise ValueError(
            f"{where}: {reference} built a model whose output is {built.outputs[0].shape} from a "
            f"{type(last).__name__} layer; expected {expected} (the data loss takes probabilities)"
        )


def _attach(layer: Any, options: Mapping[str, Any]) -> None:
    """Give a built layer penalties and a kernel constraint, as if it had been built with them."""
    for weight, name in (("kernel", "kernel_regularizer"), ("bias", "bias_regularizer")):
        extra = options[name]
        variable = getattr(layer, weight, None)
        if extra is not None and variable is not None:
            combined = _combined(getattr(layer, name, None), extra)
            setattr(layer, name, combined)
            variable.regularizer = combined  # What Keras's losses read.
    if options["activity_regularizer"] is not None:
        layer.activity_regularizer = _combined(
            layer.activity_regularizer, options["activity_regularizer"]
        )
    if options["kernel_constraint"] is not None:
        layer.kernel_constraint = options["kernel_constraint"]
        layer.kernel.constraint = options["kernel_constraint"]  # What the optimizer applies.


def _weight_layers(model: keras.Model) -> Iterator[tuple[str, Any]]:
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _weight_layers(layer)
        elif isinstance(layer, _CONV):
            yield "conv", layer
        elif isinstance(layer, _DENSE):
            yield "dense", layer


def hidden_layers(model: keras.Model) -> list[tuple[str, Any]]:
    """The model's hidden dense and convolutional layers with their kinds: all but the output."""
    return list(_weight_layers(model))[:-1]


def decayed_kernels(model: keras.Model, regularizer: Mapping[str, Any]) -> list[Any]:
    """The kernels the regularizer's weight decay shrinks: those of its chosen hidden layers."""
    piece = regularizer.get("weight_decay")
    if piece is None:
        return []
    hidden = hidden_layers(model)
    where = f"regularizers.{regularizer['name']}.weight_decay"
    chosen = select_layers(piece["layers"], [kind for kind, _ in hidden], where)
    return [hidden[index][1].kernel for index in chosen]


def make_optimizer(
    training: Mapping[str, Any],
    regularizer: Mapping[str, Any] | None = None,
    trainable: Iterable[Any] = (),
    decayed: Iterable[Any] = (),
) -> keras.optimizers.Optimizer:
    """The optimizer the training spec names, at its learning rate.

    With the regularizer's ``weight_decay``, Keras's own decoupled weight
    decay (``weight_decay=rate``) acts on the ``decayed`` variables only:
    every other one of ``trainable`` is excluded from it.
    """
    optimizers = {
        "adam": keras.optimizers.Adam,
        "sgd": keras.optimizers.SGD,
        "rmsprop": keras.optimizers.RMSprop,
    }
    rate = (regularizer or {}).get("weight_decay", {}).get("rate")
    optimizer = optimizers[training["optimizer"]](
        learning_rate=training["learning_rate"], weight_decay=rate
    )
    if rate is not None:
        keep = {id(variable) for variable in decayed}
        optimizer.exclude_from_weight_decay(var_list=[v for v in trainable if id(v) not in keep])
    return optimizer


def loss_function(n_classes: int, label_smoothing: float = 0.0) -> keras.losses.Loss:
    """The data loss: binary cross-entropy for two classes, sparse categorical otherwise.

    With ``label_smoothing``, Keras's smoothed cross-entropy, which takes
    one-hot targets for more than two classes: the objective's loss.
    """
    if n_classes == 2:
        return keras.losses.BinaryCrossentropy(label_smoothing=label_smoothing)
    if label_smoothing:
        return keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)
    return keras.losses.SparseCategoricalCrossentropy()


def smoothing(regularizer: Mapping[str, Any]) -> float:
    """The regularizer's label smoothing amount, 0 without one."""
    return float(regularizer.get("label_smoothing", {}).get("amount", 0.0))


def accuracy_function(n_classes: int) -> Any:
    """Keras's per-example accuracy for the output layer :func:`build_model` gives."""
    if n_classes == 2:
        return keras.metrics.binary_accuracy
    return keras.metrics.sparse_categorical_accuracy


def compile_model(model: keras.Model, training: Mapping[str, Any], n_classes: int) -> None:
    """Attach optimizer, loss and accuracy as the training spec says (as a notebook would)."""
    accuracy: keras.metrics.Metric = (
        keras.metrics.BinaryAccuracy(name="accuracy")
        if n_classes == 2
        else keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    )
    model.compile(
        optimizer=make_optimizer(training), loss=loss_function(n_classes), metrics=[accuracy]
    )
