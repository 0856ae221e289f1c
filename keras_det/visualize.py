"""Box drawings for predictions and ground truth.

The drawing is Keras 3's ``keras.visualization.draw_bounding_boxes`` (boxes,
class names, confidence); this module only adapts the keras_det prediction
dict (padding, score threshold, label names) and writes PNG files.
"""

import os

import keras
import numpy as np
import tensorflow as tf


def draw_detections(image, prediction, bounding_box_format="xyxy", class_names=None, score_threshold=0.3, color=(255, 64, 0), line_thickness=2):
    """Draws one image's detections.

    Args:
        image: ``[H, W, 3]`` uint8 or float (0..255).
        prediction: dict with ``boxes [K, 4]``, ``labels [K]`` (``-1`` padding)
            and optional ``scores [K]`` — one image of a prediction dict, or
            ground truth.
        bounding_box_format: format of ``prediction["boxes"]``.
        class_names: names indexed by label (default: the label numbers).
        score_threshold: detections scoring below it are not drawn.
        color: RGB box colour.
        line_thickness: pixels.

    Returns:
        uint8 ``[H, W, 3]`` with the boxes drawn.
    """
    image = np.asarray(image)
    labels = np.asarray(prediction["labels"]).astype(np.int64)
    boxes = np.asarray(prediction["boxes"], np.float32)
    keep = labels >= 0
    if "scores" in prediction:
        keep &= np.asarray(prediction["scores"]) >= score_threshold
    boxes, labels = boxes[keep], labels[keep]
    if boxes.shape[0] == 0:
        return np.clip(image, 0, 255).astype(np.uint8)
    mapping = {i: (class_names[i] if class_names is not None else str(i)) for i in np.unique(labels).tolist()}
    drawn = keras.visualization.draw_bounding_boxes(
        np.clip(image, 0, 255).astype(np.uint8)[None],
        {"boxes": boxes[None], "labels": labels[None]},
        bounding_box_format=bounding_box_format,
        class_mapping=mapping,
        color=color,
        line_thickness=line_thickness,
        font_scale=0.4,
    )
    return np.asarray(drawn[0]).astype(np.uint8)


def save_png(image, path):
    """Writes a uint8 ``[H, W, 3]`` image as PNG; returns ``path``."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tf.io.write_file(path, tf.io.encode_png(np.asarray(image, np.uint8)))
    return path
