"""A ZeroPadding2D and the 'valid' strided convolution after it, as one 'same' convolution where they are equal.

``keras.applications`` MobileNetV2 and MobileNetV3 pad before each stride-2
depthwise convolution (``ZeroPadding2D(imagenet_utils.correct_pad(x, k))``,
then ``DepthwiseConv2D(k, 2, padding="valid")``). Built for any input size
(``input_shape=(None, None, 3)``, as `keras_det.backbones` builds them),
``correct_pad`` pads ``(k // 2 - 1, k // 2)`` on each spatial axis; on an
even size that is exactly TensorFlow's ``"SAME"`` padding for stride 2
(``total = k - 2``, the smaller half first). On CPU the separate ``Pad`` op
copies the whole feature map: it was 10 % of the op time of the YOLO xs
detector (MobileNetV2, 320 px; `benchmarks/profile_ops.py`), ~6 ms of it in
``block_1_pad`` alone. A ``"SAME"`` convolution pads inside the oneDNN
kernel instead: the served SSDLite and YOLO xs (320 px) took 0.93x and
0.95-0.98x the time of the unmerged copy (paired, one run). (TensorFlow's explicit-padding depthwise convolution would
say the same thing for every size, but its CPU kernel aborts the process on
it: ``tensor_format.h`` check failure, TF 2.21.)

`PaddedConv` computes ``conv(ZeroPadding2D(padding)(x))`` exactly: by the
``"same"`` convolution when the input's static height and width make the
two equal, else (odd sizes, unknown sizes) by the padding and the ``"valid"``
convolution, as before. `keras_det.models.folding.fold_batch_norms` puts it
in the inference copy of a backbone; training models keep Keras' layers.
"""

import keras
from keras import ops

# The convolutions PaddedConv (and `keras_det.models.folding`'s BatchNorm folding) rewrite.
CONVS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)


def same_padding(size, kernel_size, stride, dilation=1):
    """``(before, after)`` zeros TensorFlow's ``"SAME"`` padding adds on one spatial axis.

    Args:
        size: the input's length on that axis.
        kernel_size, stride, dilation: the convolution's, on that axis.

    Returns:
        ``(total // 2, total - total // 2)`` with
        ``total = max((ceil(size / stride) - 1) * stride + (kernel_size - 1) * dilation + 1 - size, 0)``.
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel_size - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


@keras.saving.register_keras_serializable(package="keras_det")
class PaddedConv(keras.layers.Layer):
    """``conv(ZeroPadding2D(padding)(x))`` computed as one ``"same"`` convolution where that is equal.

    Args:
        conv: a ``Conv2D`` or ``DepthwiseConv2D``, channels last, ``padding="valid"``
            (its kernel, bias and activation are used as they are).
        padding: ``((top, bottom), (left, right))`` zeros, as ``ZeroPadding2D``'s.
        **kwargs: ``keras.layers.Layer`` arguments (``name``...).

    Call arguments:
        inputs: ``[B, H, W, C_in]``.

    Returns:
        ``[B, H', W', C_out]``, what the padding and ``conv`` return.
    """

    def __init__(self, conv, padding, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(conv, CONVS) or conv.padding != "valid" or conv.data_format != "channels_last":
            raise ValueError(f"PaddedConv: conv must be a channels-last Conv2D / DepthwiseConv2D with padding='valid', "
                             f"got {conv!r}.")
        self.conv = conv
        self.padding = tuple(tuple(int(p) for p in pair) for pair in padding)
        self.pad = keras.layers.ZeroPadding2D(self.padding, name=f"{self.name}_pad")

    def build(self, input_shape):
        if not self.conv.built:  # a conv built before (its weights already set) is used as it is
            self.conv.build(self.pad.compute_output_shape(input_shape))

    def is_same(self, height, width):
        """Whether the padding is ``"SAME"``'s for an input of ``height`` x ``width`` (None: unknown, False)."""
        if height is None or width is None:
            return False
        sizes = (height, width)
        return all(
            same_padding(sizes[i], self.conv.kernel_size[i], self.conv.strides[i], self.conv.dilation_rate[i])
            == self.padding[i] for i in range(2))

    def call(self, inputs):
        conv = self.conv
        padded = not self.is_same(inputs.shape[1], inputs.shape[2])
        x = self.pad(inputs) if padded else inputs
        padding = "valid" if padded else "same"
        if isinstance(conv, keras.layers.DepthwiseConv2D):
            outputs = ops.depthwise_conv(x, conv.kernel, strides=conv.strides, padding=padding,
                                         dilation_rate=conv.dilation_rate, data_format="channels_last")
        else:
            outputs = ops.conv(x, conv.kernel, strides=conv.strides, padding=padding,
                               dilation_rate=conv.dilation_rate, data_format="channels_last")
        if conv.use_bias:
            outputs = ops.add(outputs, ops.reshape(conv.bias, (1, 1, 1, -1)))  # as Keras' conv: fused into the conv
        return conv.activation(outputs) if conv.activation is not None else outputs

    def compute_output_shape(self, input_shape):
        return self.conv.compute_output_shape(self.pad.compute_output_shape(input_shape))

    def get_config(self):
        config = super().get_config()
        config.update(conv=keras.saving.serialize_keras_object(self.conv), padding=self.padding)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["conv"] = keras.saving.deserialize_keras_object(config["conv"])
        return cls(**config)
