"""ReLU6 in served models, in the graph form oneDNN runs fastest on the machine.

In a served copy (`keras_det.models.folding`: BatchNorms folded into the
convolutions) Grappler fuses each ``Conv2D`` + ``BiasAdd`` + ``Relu6`` into one
oneDNN ``_FusedConv2D`` with a ``clip`` post-op. On AVX2 code (an AVX2-only CPU
such as the AMD EPYC, or ``ONEDNN_MAX_CPU_ISA=AVX2``) oneDNN runs these
convolutions as ``x64:gemm:jit``, and at a batch of one its ``clip`` post-op is
slow: a 1×1 convolution 16 → 96 channels at 160×160 takes 8.9 ms with it, 2.8 ms
with a ``relu`` post-op (TF 2.21, oneDNN's AVX2 code on an Intel Xeon; a batch
of 8 is not affected). Written ``min(relu(x), 6)`` -- the same numbers, bit for
bit -- the convolution fuses the ``relu`` and the ``Minimum`` runs apart:
the batch-1 forward of the served SSDLite, SSD and YOLO xs (MobileNetV2, 320
px) took 0.68-0.71× the time. With AVX-512 code, or at larger batches, the
fused form is the faster (split took 1.08-1.09× at batch 1 with AVX-512 code,
1.08-1.11× at batch 8 with AVX2 code, 1.12-1.14× at batch 8 with AVX-512), so
`relu6_form` picks per machine and static batch size
(``benchmarks/relu6_forms.py``, ``benchmarks/results/relu6_forms.json``).

`ServingReLU6` is ``keras.layers.ReLU(6.0)`` computing the form `relu6_form`
picks when it is called (traced); `keras_det.models.fold_batch_norms` puts it
in place of each ReLU6 that no depthwise convolution feeds (oneDNN's depthwise
kernel runs the fused clip well: split there, SSDLite and YOLO xs took
1.01-1.04× the time), and the served function (`keras_det.export`) traces a
batch of one apart so that it gets the batch-1 form. The choice is made where
the graph is traced: a SavedModel exported on an AVX2 machine keeps the
batch-1 split form when served elsewhere (same outputs, up to ~15 % slower
there with AVX-512). Measured end to end on a BCCD photo (SSD-MobileNetV2 at
224 px trained by ``keras-det train``, ``serving_default`` on the JPEG): 29.3
against 39.7 ms with AVX2 code (0.74×); the same SavedModel with AVX-512 code
1.08× the time of one exported there.
"""

import functools
import os

import keras
import tensorflow as tf

# "auto" (per machine and batch size, as above), "fused" or "split": the one setting, overridden by the
# environment variable (read when keras_det is imported).
RELU6_FORM = os.environ.get("KERAS_DET_RELU6", "auto")
FORMS = ("auto", "fused", "split")


@functools.lru_cache(maxsize=None)
def _cpu_has_avx512f():
    try:
        with open("/proc/cpuinfo") as f:
            return any(line.startswith("flags") and "avx512f" in line.split() for line in f)
    except OSError:
        return True  # not Linux: keep the fused form, TensorFlow's default


def onednn_uses_avx512():
    """Whether oneDNN runs AVX-512 code here: the CPU has AVX-512F and ``ONEDNN_MAX_CPU_ISA`` does not cap it."""
    limit = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    if limit and limit != "ALL" and not limit.startswith(("AVX512", "AVX10")):
        return False
    return _cpu_has_avx512f()


def relu6_form(batch_size):
    """``"split"`` (``min(relu(x), 6)``) or ``"fused"`` (``relu6(x)``) for a static batch size (``None``: unknown).

    Raises:
        ValueError: `RELU6_FORM` (``KERAS_DET_RELU6``) is not one of `FORMS`.
    """
    if RELU6_FORM not in FORMS:
        raise ValueError(f"KERAS_DET_RELU6 (keras_det.layers.relu6.RELU6_FORM) must be one of {FORMS}; "
                         f"got {RELU6_FORM!r}")
    if RELU6_FORM != "auto":
        return RELU6_FORM
    return "split" if batch_size == 1 and not onednn_uses_avx512() else "fused"


def is_relu6(layer):
    """Whether ``layer`` is a plain ``keras.layers.ReLU(6.0)`` (no slope, no threshold)."""
    return (isinstance(layer, keras.layers.ReLU) and layer.max_value is not None and float(layer.max_value) == 6.0
            and not layer.negative_slope and not layer.threshold)


@keras.saving.register_keras_serializable(package="keras_det")
class ServingReLU6(keras.layers.ReLU):
    """``keras.layers.ReLU(6.0)`` in the graph form `relu6_form` picks for the input's static batch size.

    Same arguments and config as ``keras.layers.ReLU`` with ``max_value=6``.

    Call arguments:
        inputs: any shape, batch first; the output equals ``relu6(inputs)`` exactly.
    """

    def __init__(self, max_value=6.0, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(max_value=max_value, negative_slope=negative_slope, threshold=threshold, **kwargs)
        if not is_relu6(self):
            raise ValueError(f"ServingReLU6 is ReLU(6.0) only; got max_value={max_value}, "
                             f"negative_slope={negative_slope}, threshold={threshold}")

    def call(self, inputs):
        batch = inputs.shape[0] if inputs.shape.rank else None
        if keras.backend.backend() == "tensorflow" and relu6_form(batch) == "split":
            return tf.minimum(tf.nn.relu(inputs), tf.constant(6.0, inputs.dtype))
        return super().call(inputs)
