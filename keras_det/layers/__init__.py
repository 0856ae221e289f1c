"""Keras layers wrapping ``keras_det.ops`` (all serializable).

DESIGN.md places every head in ``heads.py``; the single-shot heads live in
``ssd_head.py`` and ``yolo_head.py`` instead (small single-purpose modules);
all are exported here.
"""

from keras_det.layers.decoder import DetectionDecoder  # noqa: F401
from keras_det.layers.fpn import FeaturePyramid  # noqa: F401
from keras_det.layers.heads import KeypointHead, MaskHead, RoIBoxHead  # noqa: F401
from keras_det.layers.initializers import BilinearUpsampling  # noqa: F401
from keras_det.layers.padded_conv import PaddedConv  # noqa: F401
from keras_det.layers.relu6 import ServingReLU6  # noqa: F401
from keras_det.layers.preprocessing import ImagePreprocessing  # noqa: F401
from keras_det.layers.roi_heads import BoxRoIHead, KeypointRoIHead, MaskRoIHead, RoIHeads  # noqa: F401
from keras_det.layers.roi_pooling import MultiLevelRoIAlign, RoIAlign, RoIPooler, RoIPooling  # noqa: F401
from keras_det.layers.rpn import (  # noqa: F401
    AnchorGenerator,
    PrecomputedProposals,
    ProposalGenerator,
    RegionProposalNetwork,
    RPNHead,
)
from keras_det.layers.ssd_extra import build_extra_layers  # noqa: F401
from keras_det.layers.ssd_head import SSDHead  # noqa: F401
from keras_det.layers.warp import WarpRegions  # noqa: F401
from keras_det.layers.window_classifier import WindowClassifier  # noqa: F401
from keras_det.layers.yolo_head import YOLOHead, YOLONeck, YOLOv1Head  # noqa: F401
