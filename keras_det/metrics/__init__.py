"""Detection metrics: exact COCO evaluation and Pascal VOC AP.

``EvaluationCallback`` is imported lazily so that the NumPy evaluators (and
``evaluate_coco`` on files) can be used, e.g. on Beam workers, without
importing Keras / TensorFlow.
"""

from keras_det.metrics.coco import COCOEvaluator, evaluate_coco
from keras_det.metrics.voc import VOCEvaluator

__all__ = ["COCOEvaluator", "evaluate_coco", "VOCEvaluator", "EvaluationCallback"]


def __getattr__(name):
    if name == "EvaluationCallback":
        from keras_det.metrics.callbacks import EvaluationCallback

        return EvaluationCallback
    raise AttributeError(f"module 'keras_det.metrics' has no attribute {name!r}")
