"""Optimizer wrappers: per-variable learning-rate multipliers.

Keras 3 optimizers have no per-variable learning rate, so
``with_lr_multipliers`` wraps an optimizer's ``update_step`` (called once per
variable with the current learning rate by every built-in optimizer) to scale
the rate of listed variables. It works for SGD, Adam, AdamW, RMSprop, … and,
unlike scaling gradients, is exact for adaptive optimizers whose step does not
depend on the gradient's scale. The multipliers come from
``keras_det.models.transfer.fine_tune``; ``Detector.compile`` and
``TransferClassifier.compile`` apply them.
"""


def with_lr_multipliers(optimizer, multipliers):
    """Scales the learning rate of the variables named in ``multipliers``.

    Args:
        optimizer: a ``keras.optimizers.Optimizer`` (modified in place).
        multipliers: dict ``{variable.path: factor}``, e.g. from ``fine_tune``.

    Returns:
        ``optimizer``.
    """
    multipliers = dict(multipliers or {})
    base_update = getattr(optimizer, "_keras_det_base_update_step", None) or optimizer.update_step

    def variable_path(variable):
        # The TensorFlow backend hands update_step the backing tf.Variable,
        # which has no ``path``: find the Keras variable it backs by the
        # optimizer's own index (as Adam finds its slots).
        path = getattr(variable, "path", None)
        if path is None:
            try:
                path = optimizer._trainable_variables[optimizer._get_variable_index(variable)].path
            except (AttributeError, IndexError, KeyError) as error:
                # Loud rather than a silent multiplier of 1 (a Keras upgrade that moves these internals).
                raise RuntimeError(
                    f"with_lr_multipliers: cannot name the variable {getattr(variable, 'name', variable)!r} that "
                    f"{type(optimizer).__name__}.update_step received ({type(error).__name__}: {error}); "
                    "the per-variable learning rates would not apply"
                ) from error
        return path

    def update_step(gradient, variable, learning_rate):
        factor = multipliers.get(variable_path(variable), 1.0)
        if factor != 1.0:
            learning_rate = learning_rate * factor
        return base_update(gradient, variable, learning_rate)

    optimizer._keras_det_base_update_step = base_update
    optimizer.update_step = update_step
    optimizer.lr_multipliers = multipliers
    return optimizer
