"""Keras layers wrapping ``keras_det.ops`` (all serializable)."""

from keras_det.layers.rpn import AnchorGenerator  # noqa: F401
from keras_det.layers.roi_pooling import MultiLevelRoIAlign, RoIAlign, RoIPooling  # noqa: F401
