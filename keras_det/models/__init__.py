"""Detection models, one module per system of the seed.

Importing this package registers every model with Keras' serialization, so
``keras.saving.load_model`` finds them.
"""

from keras_det.models.classify_localize import ClassifyLocalize  # noqa: F401
from keras_det.models.fast_rcnn import FastRCNN  # noqa: F401
from keras_det.models.faster_rcnn import FasterRCNN  # noqa: F401
from keras_det.models.mask_rcnn import MaskRCNN  # noqa: F401
from keras_det.models.rcnn import RCNN  # noqa: F401
from keras_det.models.segmentation import FCNSegmenter  # noqa: F401
from keras_det.models.sliding_window import SlidingWindowDetector  # noqa: F401
from keras_det.models.ssd import SSD  # noqa: F401
from keras_det.models.transfer import TransferClassifier  # noqa: F401
from keras_det.models.yolo import YOLO  # noqa: F401
from keras_det.models.yolo_v1 import YOLOv1  # noqa: F401
from keras_det.models.folding import fold_batch_norms, inference_copy  # noqa: F401
