"""Box drawings for predictions and ground truth (OpenCV).

`draw_detections` draws each kept box in its class's colour with a
``name score`` label on a filled background of the same colour. The label
sits above the box, or inside it when the box touches the top edge, and is
shifted left so that it stays inside the image; line width and font scale
grow with the image size (about 1/300 of its shorter side, at least 1 px), so
labels are readable on a 640x480 photo and on a 64x64 crop alike.
(``keras.visualization.draw_bounding_boxes`` draws no label background and
places labels outside the image at the top edge, hence OpenCV directly.)
"""

import colorsys
import os

import cv2
import numpy as np


def class_color(label):
    """A distinct RGB colour per class label (golden-ratio hues, bright and saturated).

    Args:
        label: int >= 0.

    Returns:
        ``(r, g, b)`` ints in 0..255; different labels give different colours.
    """
    hue = (0.61803398875 * int(label) + 0.05) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def _text_color(color):
    """Black or white, whichever reads better on ``color`` (perceived luminance)."""
    r, g, b = color
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)


def drawing_scale(height, width):
    """``(line_thickness, font_scale)`` for an image of ``height x width`` pixels."""
    side = min(height, width)
    thickness = max(1, int(round(side / 300)))
    font_scale = max(0.3, side / 900)
    return thickness, font_scale


def draw_detections(image, prediction, bounding_box_format="xyxy", class_names=None, score_threshold=0.3, color=None, line_thickness=None):
    """Draws one image's detections.

    Args:
        image: ``[H, W, 3]`` uint8 or float (0..255), RGB.
        prediction: dict with ``boxes [K, 4]``, ``labels [K]`` (0-based,
            ``-1`` padding) and optional ``scores [K]`` — one image of a
            prediction dict, or ground truth (no scores: labels only).
        bounding_box_format: format of ``prediction["boxes"]`` (absolute
            pixels, or ``rel_*``).
        class_names: names indexed by label (default: the label numbers).
        score_threshold: detections scoring below it are not drawn.
        color: one RGB colour for every box (default: `class_color` per class).
        line_thickness: pixels (default: `drawing_scale`).

    Returns:
        uint8 ``[H, W, 3]`` with the boxes and labels drawn.
    """
    from keras_det.ops.boxes import convert_format

    image = np.ascontiguousarray(np.clip(np.asarray(image), 0, 255).astype(np.uint8))
    height, width = image.shape[:2]
    labels = np.asarray(prediction["labels"]).astype(np.int64).reshape(-1)
    boxes = np.asarray(prediction["boxes"], np.float32).reshape(-1, 4)
    scores = np.asarray(prediction["scores"], np.float32).reshape(-1) if "scores" in prediction else None
    keep = labels >= 0
    if scores is not None:
        keep &= scores >= score_threshold
    if not keep.any():
        return image
    boxes = np.asarray(convert_format(boxes[keep], bounding_box_format, "xyxy", image_shape=(height, width)), np.float32)
    labels = labels[keep]
    scores = scores[keep] if scores is not None else None
    thickness, font_scale = drawing_scale(height, width)
    if line_thickness is not None:
        thickness = int(line_thickness)
    font, text_thickness = cv2.FONT_HERSHEY_SIMPLEX, max(1, thickness // 2)
    order = np.argsort(scores, kind="stable") if scores is not None else np.arange(len(labels))  # best drawn last (on top)
    for i in order:
        x1, y1, x2, y2 = (int(round(float(v))) for v in boxes[i])
        x1, x2 = sorted((min(max(x1, 0), width - 1), min(max(x2, 0), width - 1)))
        y1, y2 = sorted((min(max(y1, 0), height - 1), min(max(y2, 0), height - 1)))
        label = int(labels[i])
        box_color = tuple(int(c) for c in (color if color is not None else class_color(label)))
        cv2.rectangle(image, (x1, y1), (x2, y2), box_color, thickness)
        name = class_names[label] if class_names is not None and label < len(class_names) else str(label)
        text = name if scores is None else f"{name} {float(scores[i]):.2f}"
        (tw, th), baseline = cv2.getTextSize(text, font, font_scale, text_thickness)
        pad = max(1, thickness)
        box_h, box_w = th + baseline + 2 * pad, tw + 2 * pad
        # Above the box when there is room, else just inside its top edge; never outside the image.
        top = y1 - box_h if y1 - box_h >= 0 else y1
        top = min(max(top, 0), max(height - box_h, 0))
        left = min(max(x1, 0), max(width - box_w, 0))
        cv2.rectangle(image, (left, top), (min(left + box_w, width) - 1, min(top + box_h, height) - 1), box_color, cv2.FILLED)
        cv2.putText(image, text, (left + pad, top + pad + th), font, font_scale, _text_color(box_color), text_thickness, cv2.LINE_AA)
    return image


def save_png(image, path):
    """Writes a uint8 ``[H, W, 3]`` RGB image as PNG (parent folders created); returns ``path``."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    image = np.asarray(image, np.uint8)
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]))
    if not ok:  # pragma: no cover
        raise OSError(f"cannot encode the PNG file {path}")
    with open(path, "wb") as f:
        f.write(encoded.tobytes())
    return path
