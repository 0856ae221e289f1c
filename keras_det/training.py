"""Training set-up beyond one float32 device: mixed precision.

``set_mixed_precision(policy)`` sets Keras' global dtype policy; build the
model after calling it (layers take the policy current at construction):

* ``"mixed_bfloat16"`` (CPUs, TPUs): bfloat16 compute, float32 variables, no
  loss scaling needed.
* ``"mixed_float16"`` (GPUs): float16 compute; ``compile()`` wraps the
  optimizer in ``keras.optimizers.LossScaleOptimizer`` (Keras'
  ``auto_scale_loss``) and ``Detector.train_step`` multiplies the loss by its
  scale (``optimizer.scale_loss``) before the gradients, which
  ``apply_gradients`` divides back and skips when not finite.
* ``"float32"``: the default.

Losses are computed in float32 (``keras_det.losses`` casts their inputs), the
detection outputs and the serving signatures stay float32.
"""

import keras

POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")


def set_mixed_precision(policy):
    """Sets the global Keras dtype policy used by models built afterwards.

    Args:
        policy: one of ``"float32"``, ``"mixed_float16"``, ``"mixed_bfloat16"``
            (``None`` means ``"float32"``).

    Returns:
        The policy name set.

    Raises:
        ValueError: ``policy`` is not one of those names.
    """
    policy = "float32" if policy is None else policy
    if policy not in POLICIES:
        raise ValueError(f"`policy` must be one of {POLICIES}, got {policy!r}.")
    keras.config.set_dtype_policy(policy)
    return policy
