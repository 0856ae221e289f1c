"""Detection losses on dense, padded targets (from ``keras_det.ops.targets``).

Every loss takes per-prediction tensors ``[B, N, ...]`` and a weight ``[B, N]``
(0 for predictions that take no part), and returns a scalar normalised by a
count the caller chooses, following the papers:

* Faster R-CNN (torchvision's reference): classification losses are means
  over the sampled predictions; box losses are sums over positives divided by
  the number of sampled predictions.
* SSD: both terms summed and divided by the number of positives, negatives
  picked by ``hard_negative_mask`` (3 negatives per positive).
* YOLO v1 (``yolo_v1_loss``): sum-squared terms summed over the grid and
  divided by the number of images.

Counts are global: under ``tf.distribute`` every normaliser is the count over
all replicas' examples (``replica_normalizer``), so a step on ``R`` replicas
equals a step on one device with the same global batch.

Modules: ``classification`` (softmax / binary CE, focal, hard negative mining,
R-CNN's SVM hinge), ``box`` (smooth-L1 / L2 deltas, IoU / GIoU / DIoU / CIoU),
``instance`` (Mask R-CNN's mask and keypoint losses), ``yolo`` (YOLO v1),
``replica`` (the normalisers); every public name is importable from here.
"""

from keras_det.losses.box import box_regression_loss, ciou, diou, elementwise_iou, giou, smooth_l1
from keras_det.losses.classification import (
    binary_cross_entropy,
    hard_negative_mask,
    sigmoid_focal_loss,
    softmax_cross_entropy,
    svm_squared_hinge_loss,
)
from keras_det.losses.instance import keypoint_loss, mask_loss
from keras_det.losses.replica import replica_mean_scale, replica_normalizer
from keras_det.losses.yolo import (
    YOLO_V1_CLASS_LOSSES,
    YOLO_V1_CONFIDENCE_LOSSES,
    YOLO_V1_CONFIDENCE_TARGETS,
    check_yolo_v1_options,
    yolo_v1_loss,
)

__all__ = [
    "YOLO_V1_CLASS_LOSSES",
    "YOLO_V1_CONFIDENCE_LOSSES",
    "YOLO_V1_CONFIDENCE_TARGETS",
    "binary_cross_entropy",
    "box_regression_loss",
    "check_yolo_v1_options",
    "ciou",
    "diou",
    "elementwise_iou",
    "giou",
    "hard_negative_mask",
    "keypoint_loss",
    "mask_loss",
    "replica_mean_scale",
    "replica_normalizer",
    "sigmoid_focal_loss",
    "smooth_l1",
    "softmax_cross_entropy",
    "svm_squared_hinge_loss",
    "yolo_v1_loss",
]
