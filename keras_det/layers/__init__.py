"""Keras layers wrapping ``keras_det.ops`` (all serializable)."""

from keras_det.layers.decoder import DetectionDecoder  # noqa: F401
from keras_det.layers.fpn import FeaturePyramid  # noqa: F401
from keras_det.layers.heads import KeypointHead, MaskHead, RoIBoxHead  # noqa: F401
from keras_det.layers.preprocessing import ImagePreprocessing  # noqa: F401
from keras_det.layers.roi_pooling import MultiLevelRoIAlign, RoIAlign, RoIPooling  # noqa: F401
from keras_det.layers.rpn import AnchorGenerator, ProposalGenerator, RPNHead  # noqa: F401
