"""Input preprocessing of ``keras.applications`` backbones as a serializable layer."""

import keras
from keras import ops

# keras.applications.imagenet_utils.preprocess_input constants.
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)
MODES = ("caffe", "tf", "torch", "none")


@keras.saving.register_keras_serializable(package="keras_det")
class ImagePreprocessing(keras.layers.Layer):
    """Maps RGB images in 0..255 to what a ``keras.applications`` network expects.

    The modes are those of ``keras.applications.imagenet_utils.preprocess_input``:
    ``"caffe"`` (VGG, ResNet: RGB→BGR, minus the ImageNet BGR mean),
    ``"tf"`` (MobileNetV2: scale to [-1, 1]), ``"torch"`` (scale to [0, 1],
    ImageNet mean/std), ``"none"`` (networks that normalise inside, e.g.
    MobileNetV3 and EfficientNet). It is a layer rather than a call to
    ``preprocess_input`` so that it is part of the saved graph.

    Call arguments:
        images: float ``[B, H, W, 3]`` RGB in 0..255.
    """

    def __init__(self, mode="caffe", **kwargs):
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ValueError(f"`mode` must be one of {MODES}, got {mode!r}.")
        self.mode = mode

    def call(self, images):
        images = ops.cast(images, self.compute_dtype)
        if self.mode == "caffe":
            return ops.flip(images, axis=-1) - ops.convert_to_tensor(_CAFFE_MEAN_BGR, self.compute_dtype)
        if self.mode == "tf":
            return images / 127.5 - 1.0
        if self.mode == "torch":
            mean = ops.convert_to_tensor(_TORCH_MEAN, self.compute_dtype)
            std = ops.convert_to_tensor(_TORCH_STD, self.compute_dtype)
            return (images / 255.0 - mean) / std
        return images

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["mode"] = self.mode
        return config
