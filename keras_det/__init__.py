"""keras_det: object detection for Keras 3 on the TensorFlow backend.

Importing the package selects the TensorFlow backend for Keras unless the
caller already chose one (every layer here is written for TensorFlow: the
detection core relies on ``tf.image.crop_and_resize`` and TF's NMS kernels).
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

__all__ = ["__version__"]
