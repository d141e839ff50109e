"""An orthogonality penalty: a layer's units should point in different directions.

regbench calls ``orthogonality(**args)`` once per model it builds and adds
the returned penalty of each chosen layer's kernel to the objective, as
Keras adds a ``kernel_regularizer``'s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from keras import ops


def orthogonality(strength: float = 1.0e-3) -> Callable[[Any], Any]:
    """strength x ||W'W - I||², W the kernel as one column of incoming weights per unit.

    Zero when the units' weight vectors are orthonormal; large when units
    duplicate each other or grow. Convolution kernels are read as one
    column per filter.
    """

    def penalty(kernel: Any) -> Any:
        units = kernel.shape[-1]
        columns = ops.reshape(kernel, (-1, units))
        gram = ops.matmul(ops.transpose(columns), columns)
        return strength * ops.sum(ops.square(gram - ops.eye(units, dtype=gram.dtype)))

    return penalty
