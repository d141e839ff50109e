"""One Keras model per seed, run as one: every layer applied to all seeds' activations at once.

A cell's seeds train together. Each seed's model is built by the ordinary
builder after seeding, so it has exactly the initial weights, dropout
seed-generator state and architecture it would have alone. The stack then
keeps the seeds side by side along a leading axis: activations are
``[seeds, batch, ...]`` and the weights of dense and batch-norm layers
become variables of shape ``[seeds, ...]``, so a layer costs one batched
operation for all seeds instead of one per seed. Each seed still only ever
sees its own slice: a batched matrix product multiplies seed ``s``'s
activations by seed ``s``'s kernel, batch-norm moments are taken per seed,
dropout draws each seed's mask from that seed's own Keras seed generator,
and an elementwise optimizer (Adam, SGD, RMSprop) updates every element as
it would update it alone.

Layers are handled three ways:

- batched: ``Dense``, ``Conv2D`` and ``BatchNormalization`` (stacked
  weights, the same arithmetic as Keras's own ``call``; a kernel constraint
  such as ``MaxNorm`` is applied to each seed's slice of the stacked
  kernel), and ``Dropout`` (Keras's own ``keras.random.dropout`` per seed,
  on that seed's generator);
- folded: layers without weights that act on each example alone
  (``Flatten``, ``Activation``, ``MaxPooling2D``) run once with the seeds
  folded into the batch;
- per seed: any other layer (``GaussianNoise``, ``SpatialDropout2D`` and
  the random augmentation layers among them, each drawing from its own
  seed's generator), and any model that is not a simple chain of layers,
  runs as each seed's own Keras layer (or model) on that seed's slice,
  training that seed's own variables. This is what keeps any Keras model
  trainable here; it is slower, not less exact. A chain nested in a chain
  (a custom model after input pieces) is run layer by layer.

Penalties are returned as Keras computes them: activity penalties divided by
the batch size, then weight penalties, in the order of ``model.losses``.

Bit for bit, a seed's numbers must not depend on how many seeds share its
cell. Matrix products, elementwise sums and products, ``relu`` and ``sqrt``
give the same bits on a seed's slice whatever the tensor around it. Two
kinds of operation do not: ``exp``, ``log``, ``sigmoid`` and ``rsqrt``
(TensorFlow computes most of a tensor in vector registers with a polynomial
approximation and the last few elements with the C library, so an element's
bits depend on where it sits in the tensor), and sums over the batch axis
(their order of additions depends on the tensor's shape; a bias's gradient
is one). Those are applied to each seed's slice on its own
(:func:`per_seed`), exactly as a cell of one seed applies them, and as Keras
applies them to a model.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import layers

__all__ = ["Penalties", "SeedStack", "SeedView", "per_seed"]

#: Layers with no weights that treat each example on its own, so seeds may share one call.
_FOLDABLE = (layers.Flatten, layers.Activation, layers.MaxPooling2D)

#: Keras's sigmoid and softmax mark their output with the logits they came from, and its
#: cross-entropies then compute from those logits (unclipped) instead of the probabilities.
#: A seed's slice, and a stack of seeds' outputs, keep that mark.
_LOGITS = "_keras_logits"

#: Activations whose every element is exactly rounded, so they may run on all seeds at once.
_EXACT_ACTIVATIONS = (keras.activations.relu, keras.activations.linear)


@dataclass
class Penalties:
    """Each penalty term as a ``[seeds]`` tensor, in the order Keras sums them."""

    activity: list[Any] = field(default_factory=list)
    weights: list[Any] = field(default_factory=list)

    def terms(self) -> list[Any]:
        """Activity penalties, then weight penalties (``model.losses`` order)."""
        return [*self.activity, *self.weights]


class SeedStack:
    """The seeds' models as one: a forward pass over ``[seeds, batch, ...]`` activations."""

    def __init__(self, models: Sequence[keras.Model]) -> None:
        if not models:
            raise ValueError("a seed stack needs at least one model")
        self.size = len(models)
        self.template = models[0]
        self.stages = _stages(models)
        self.trainable = [v for stage in self.stages for v in stage.trainable]

    def forward(self, x: Any, training: bool) -> tuple[Any, Penalties]:
        """Outputs ``[seeds, batch, ...]`` for inputs ``[seeds, batch, ...]``, and the penalties."""
        penalties = Penalties()
        for stage in self.stages:
            x = stage(x, training, penalties)
        return x, penalties

    def counterparts(self, variables: Sequence[Any]) -> list[Any]:
        """The variables this stack trains in place of the given ones of the seeds' models."""
        held: dict[int, Any] = {}
        for variable in variables:
            for stage in self.stages:
                found = stage.sources.get(id(variable))
                if found is not None:
                    held[id(found)] = found
        return list(held.values())

    def view(self, index: int) -> SeedView:
        """Seed ``index``'s weights as Keras's callbacks see a model's."""
        return SeedView([w for stage in self.stages for w in stage.weights_of(index)])

    def kernels(self, index: int) -> dict[str, np.ndarray]:
        """Seed ``index``'s kernels by layer name."""
        found: dict[str, np.ndarray] = {}
        for stage in self.stages:
            found.update(stage.kernels_of(index))
        return found


class SeedView:
    """One seed's slice of a stack, with the ``get_weights``/``set_weights`` of a Keras model.

    Keras's ``EarlyStopping`` reads and restores a model's weights through
    these two methods and stops it through ``stop_training``; a view lets it
    do so for one seed of a cell without touching the others.
    """

    def __init__(self, weights: Sequence[tuple[Any, int | None]]) -> None:
        self._weights = list(weights)
        self.stop_training = False

    def get_weights(self) -> list[np.ndarray]:
        """The seed's weight values (stacked ones sliced), in a fixed order."""
        return [
            np.array(variable.numpy() if index is None else variable.numpy()[index])
            for variable, index in self._weights
        ]

    def set_weights(self, values: Sequence[np.ndarray]) -> None:
        """Write values :meth:`get_weights` returned back into the seed's slice."""
        for (variable, index), value in zip(self._weights, values, strict=True):
            if index is None:
                variable.assign(value)
            else:
                whole = variable.numpy()
                whole[index] = value
                variable.assign(whole)


class _Stage:
    """One layer of the chain, for all seeds."""

    trainable: list[Any]
    #: Each seed's own variable (by id) and the variable trained in its place.
    sources: dict[int, Any] = {}  # noqa: RUF012 (never mutated: stages set their own)

    def __call__(self, x: Any, training: bool, penalties: Penalties) -> Any:
        raise NotImplementedError

    def weights_of(self, index: int) -> list[tuple[Any, int | None]]:
        return []

    def kernels_of(self, index: int) -> dict[str, np.ndarray]:
        return {}


def _stages(models: Sequence[keras.Model]) -> list[_Stage]:
    """The stages that run the models' layers, or one per-seed stage for a non-chain model."""
    template = models[0]
    chain = _chain(template)
    if chain is None:
        return [_PerSeed(list(models))]
    stages: list[_Stage] = []
    for index in chain:
        same = [model.layers[index] for model in models]
        if isinstance(same[0], keras.Model) and _chain(same[0]) is not None:
            stages.extend(_stages(same))
        else:
            stages.append(_stage_for(same))
    return stages


def _chain(model: keras.Model) -> list[int] | None:
    """Indices of the model's layers (inputs aside) if each feeds the next, else None."""
    try:
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            return None
        previous, chain = model.inputs[0], []
        for index, layer in enumerate(model.layers):
            if isinstance(layer, layers.InputLayer):
                continue
            if layer.input is not previous:
                return None
            previous = layer.output
            chain.append(index)
    except (AttributeError, ValueError):  # A layer used more than once, or not built.
        return None
    return chain if previous is model.outputs[0] else None


def _stage_for(same: list[Any]) -> _Stage:
    """The fastest stage that keeps the layer's semantics exactly."""
    layer = same[0]
    kind = type(layer)
    exact = not isinstance(layer, layers.Activation) or layer.activation in _EXACT_ACTIVATIONS
    if kind in _FOLDABLE and exact and layer.activity_regularizer is None:
        return _Folded(layer, len(same))
    dense = kind is layers.Dense and len(layer.input.shape) == 2
    convolution = kind is layers.Conv2D and layer.groups == 1
    if (dense or convolution) and _plain(layer, ("bias_constraint",)):
        return _Linear(same)
    if kind is layers.Dropout:
        return _Dropout(same)
    if (
        kind is layers.BatchNormalization
        and not layer.renorm
        and not layer.synchronized
        and layer.axis in (-1, len(layer.input.shape) - 1)
        and _plain(layer, ("gamma_regularizer", "beta_regularizer", "gamma_constraint"))
        and layer.beta_constraint is None
    ):
        return _BatchNorm(same)
    return _PerSeed(same)


def _plain(layer: Any, attributes: Sequence[str]) -> bool:
    """Whether none of the named optional settings (constraints, ...) is set on the layer."""
    return all(getattr(layer, name, None) is None for name in attributes) and not getattr(
        layer, "lora_enabled", False
    )


def _stacked(variables: Sequence[Any], name: str, trainable: bool = True) -> keras.Variable:
    """One variable holding every seed's copy of a weight along a new leading axis."""
    value = np.stack([np.asarray(variable.numpy()) for variable in variables])
    return keras.Variable(value, name=name, trainable=trainable)


def _per_seed(tensor: Any, size: int) -> list[Any]:
    """Each seed's slice of a stacked tensor, keeping the logits it was computed from."""
    # unstack (not tensor[s]): its gradient is one stack, not a zero-filled copy per seed.
    slices = list(tf.unstack(tensor, num=size))
    logits = getattr(tensor, _LOGITS, None)
    if logits is not None:
        for one, its_logits in zip(slices, tf.unstack(logits, num=size), strict=True):
            setattr(one, _LOGITS, its_logits)
    return slices


def _stack(tensors: Sequence[Any]) -> Any:
    """Seeds' tensors stacked, keeping the logits they were computed from."""
    stacked = tf.stack(tensors)
    logits = [getattr(one, _LOGITS, None) for one in tensors]
    if all(one is not None for one in logits):
        with contextlib.suppress(AttributeError):  # Eager tensors take no attributes.
            setattr(stacked, _LOGITS, tf.stack(logits))
    return stacked


def per_seed(function: Any, *tensors: Any) -> Any:
    """``function`` applied to each seed's slices of ``tensors`` alone, the results stacked."""
    size = tensors[0].shape[0]
    slices = [_per_seed(tensor, size) for tensor in tensors]
    return _stack([function(*one) for one in zip(*slices, strict=True)])


def _activate(activation: Any, x: Any) -> Any:
    """Apply an activation; only exactly rounded ones to all seeds at once."""
    if activation is None or activation in _EXACT_ACTIVATIONS:
        return x if activation is None else activation(x)
    return per_seed(activation, x)


class _Folded(_Stage):
    """A weightless per-example layer, run once with the seeds folded into the batch."""

    def __init__(self, layer: Any, size: int) -> None:
        self.layer, self.size, self.trainable = layer, size, []

    def __call__(self, x: Any, training: bool, penalties: Penalties) -> Any:
        shape = tf.shape(x)
        folded = self.layer(tf.reshape(x, tf.concat([[-1], shape[2:]], 0)), training=training)
        return tf.reshape(folded, tf.concat([shape[:2], tf.shape(folded)[1:]], 0))


class _Linear(_Stage):
    """Dense or 2-D convolution layers of every seed, their weights stacked: Keras's
    ``Dense.call`` (one batched matrix product for all seeds) or ``BaseConv.call``
    (a convolution per seed: a grouped one would not give each seed its own bits)."""

    def __init__(self, same: list[Any]) -> None:
        self.layer, self.size = same[0], len(same)
        self.kernel = _stacked([layer.kernel for layer in same], f"{self.layer.name}_kernel")
        self.bias = (
            _stacked([layer.bias for layer in same], f"{self.layer.name}_bias")
            if self.layer.use_bias
            else None
        )
        self.trainable = [self.kernel] if self.bias is None else [self.kernel, self.bias]
        self.sources = {id(layer.kernel): self.kernel for layer in same}
        if self.bias is not None:
            self.sources.update({id(layer.bias): self.bias for layer in same})
        constraint = self.layer.kernel_constraint
        if constraint is not None:
            # The optimizer applies it after each step; each seed's slice is constrained alone.
            self.kernel.constraint = lambda value: per_seed(
                constraint, keras.ops.convert_to_tensor(value)
            )

    def __call__(self, x: Any, training: bool, penalties: Penalties) -> Any:
        layer = self.layer
        if isinstance(layer, layers.Conv2D):
            y = per_seed(self._convolve, x, self.kernel.value)
        else:
            y = tf.matmul(x, self.kernel.value)
        if self.bias is not None:
            # Per seed: the bias's gradient sums over the batch.
            y = per_seed(tf.add, y, self.bias.value)
        y = _activate(layer.activation, y)
        if layer.activity_regularizer is not None:
            batch = tf.cast(tf.shape(y)[1], y.dtype)
            penalties.activity.append(
                per_seed(
                    lambda one: keras.ops.divide_no_nan(layer.activity_regularizer(one), batch), y
                )
            )
        for variable, regularizer in (
            (self.kernel, layer.kernel_regularizer),
            (self.bias, layer.bias_regularizer),
        ):
            if variable is not None and regularizer is not None:
                penalties.weights.append(per_seed(regularizer, variable.value))
        return y

    def weights_of(self, index: int) -> list[tuple[Any, int | None]]:
        return [(variable, index) for variable in self.trainable]

    def kernels_of(self, index: int) -> dict[str, np.ndarray]:
        return {self.layer.name: np.array(self.kernel.numpy()[index])}

    def _convolve(self, x: Any, kernel: Any) -> Any:
        layer = self.layer
        return keras.ops.conv(
            x,
            kernel,
            strides=layer.strides,
            padding=layer.padding,
            dilation_rate=layer.dilation_rate,
            data_format=layer.data_format,
        )


class _BatchNorm(_Stage):
    """Batch normalization per seed, with Keras's arithmetic and moving-statistics update."""

    def __init__(self, same: list[Any]) -> None:
        layer = self.layer = same[0]
        name = layer.name
        self.gamma = _stacked([one.gamma for one in same], f"{name}_gamma") if layer.scale else None
        self.beta = _stacked([one.beta for one in same], f"{name}_beta") if layer.center else None
        self.moving_mean = _stacked([one.moving_mean for one in same], f"{name}_mean", False)
        self.moving_variance = _stacked(
            [one.moving_variance for one in same], f"{name}_variance", False
        )
        self.trainable = [v for v in (self.gamma, self.beta) if v is not None]
        self.parts = (self.gamma, self.beta, self.moving_mean, self.moving_variance)
        self.sources = {
            id(getattr(one, name)): stacked
            for one in same
            for name, stacked in (("gamma", self.gamma), ("beta", self.beta))
            if stacked is not None
        }

    def __call__(self, x: Any, training: bool, penalties: Penalties) -> Any:
        # Seed by seed, as Keras's BatchNormalization.call does it: moments sum over the
        # batch and the normalization takes rsqrt. Only the moving averages are updated for
        # all seeds at once (elementwise).
        axes = list(range(len(x.shape) - 2))
        layer, size = self.layer, self.moving_mean.shape[0]
        slices = [_per_seed(v.value, size) if v is not None else [None] * size for v in self.parts]
        outputs, means, variances = [], [], []
        for one, (gamma, beta, moving_mean, moving_variance) in zip(
            _per_seed(x, size), zip(*slices, strict=True), strict=True
        ):
            if training:
                mean, variance = keras.ops.moments(one, axes=axes)
            else:
                mean, variance = moving_mean, moving_variance
            means.append(mean)
            variances.append(variance)
            outputs.append(
                keras.ops.batch_normalization(
                    one, mean, variance, axis=-1, offset=beta, scale=gamma, epsilon=layer.epsilon
                )
            )
        if training:
            momentum = layer.momentum
            for moving, batch in ((self.moving_mean, means), (self.moving_variance, variances)):
                moving.assign(moving.value * momentum + tf.stack(batch) * (1.0 - momentum))
        return _stack(outputs)

    def weights_of(self, index: int) -> list[tuple[Any, int | None]]:
        # Keras's own order of a batch-norm layer's weights.
        ordered = (self.gamma, self.beta, self.moving_mean, self.moving_variance)
        return [(variable, index) for variable in ordered if variable is not None]


class _Dropout(_Stage):
    """Dropout per seed, each mask drawn from that seed's own Keras seed generator."""

    def __init__(self, same: list[Any]) -> None:
        self.layers, self.trainable = same, []

    def __call__(self, x: Any, training: bool, penalties: Penalties) -> Any:
        layer = self.layers[0]
        if not training or layer.rate == 0:
            return x
        return _stack(
            [
                keras.random.dropout(
                    one,
                    one_layer.rate,
                    noise_shape=one_layer.noise_shape,
                    seed=one_layer.seed_generator,
                )
                for one_layer, one in zip(self.layers, _per_seed(x, len(self.layers)), strict=True)
            ]
        )


class _PerSeed(_Stage):
    """Each seed's own Keras layer (or whole model) on its slice: any layer, trained exactly."""

    def __init__(self, same: list[Any]) -> None:
        self.layers = same
        self.trainable = [v for layer in same for v in layer.trainable_variables]
        self.sources = {id(v): v for v in self.trainable}

    def __call__(self, x: Any, training: bool, penalties: Penalties) -> Any:
        outputs, losses = [], []
        for layer, one in zip(self.layers, _per_seed(x, len(self.layers)), strict=True):
            outputs.append(layer(one, training=training))
            losses.append(list(layer.losses))
        penalties.activity.extend(tf.stack(terms) for terms in zip(*losses, strict=True))
        return _stack(outputs)

    def weights_of(self, index: int) -> list[tuple[Any, int | None]]:
        return [(weight, None) for weight in self.layers[index].weights]

    def kernels_of(self, index: int) -> dict[str, np.ndarray]:
        # Named after the first seed's layers: Keras numbers unnamed layers in the order
        # they are built, so a seed's own names depend on the seeds built before it.
        names = [one.name for one in _inner(self.layers[0])]
        return {
            name: np.array(one.kernel.numpy())
            for name, one in zip(names, _inner(self.layers[index]), strict=True)
            if getattr(one, "kernel", None) is not None
        }


def _inner(layer: Any) -> list[Any]:
    """A layer, or the layers of a model (nested models' layers included)."""
    if not isinstance(layer, keras.Model):
        return [layer]
    return [one for inner in layer.layers for one in _inner(inner)]
