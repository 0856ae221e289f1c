"""YOLO's box parameterisations as box coders: one object handed to both the
``TargetEncoder`` (``encode``) and the model's decoding (``decode``).

Both coders map between absolute ``yxyx`` boxes and the head's values in
``[0, 1]`` (the head's outputs after a sigmoid), against reference boxes laid
out as the predictions (grid cells, or priors tiled on the maps: see
``keras_det.ops.anchors.prior_grid``):

* `GridCellCoder` — YOLO v1 (Redmon et al., 2016): the centre as an offset
  inside its cell, in cell units, and the square roots of the size relative
  to the image::

      ty = (y - cell_y0) / cell_h        √h = sqrt(h / (S · cell_h))

* `PriorCellCoder` — the multiscale YOLO (YOLOv3's centre inside its cell,
  YOLOv5's bounded size, stable under an IoU loss)::

      y = prior_cy + (ty - 0.5) · stride      h = prior_h · (2 th)²

``encode(decode(v, refs), refs) == v`` for values in the coder's range.
"""

import tensorflow as tf


def _centre_size(boxes):
    ymin, xmin, ymax, xmax = tf.unstack(tf.cast(boxes, tf.float32), axis=-1)
    return (ymin + ymax) / 2.0, (xmin + xmax) / 2.0, ymax - ymin, xmax - xmin


def _corners(cy, cx, h, w):
    return tf.stack([cy - h / 2.0, cx - w / 2.0, cy + h / 2.0, cx + w / 2.0], axis=-1)


class GridCellCoder:
    """YOLO v1's grid parameterisation.

    Values are ``(ty, tx, √(h / H), √(w / W))``: the box centre relative to
    the top-left corner of its cell in cell units (in ``[0, 1)`` for the cell
    that holds the centre), and the square roots of the box height and width
    relative to the image (``H = S · cell height``, ``W = S · cell width``).

    Args:
        grid_size: ``S``, cells per image side.
    """

    def __init__(self, grid_size):
        if int(grid_size) < 1:
            raise ValueError(f"`grid_size` must be >= 1, got {grid_size!r}.")
        self.grid_size = int(grid_size)

    def encode(self, boxes, cells):
        """Values of ``boxes`` against ``cells``.

        Args:
            boxes: ``[..., 4]`` absolute ``yxyx``.
            cells: ``[..., 4]`` absolute ``yxyx`` grid cells, broadcastable
                with ``boxes``.

        Returns:
            float32 ``[..., 4]`` ``(ty, tx, √(h / H), √(w / W))``.
        """
        cy, cx, h, w = _centre_size(boxes)
        cells = tf.cast(cells, tf.float32)
        cell_h = cells[..., 2] - cells[..., 0]
        cell_w = cells[..., 3] - cells[..., 1]
        return tf.stack(
            [
                (cy - cells[..., 0]) / cell_h,
                (cx - cells[..., 1]) / cell_w,
                tf.sqrt(tf.maximum(h, 0.0) / (cell_h * self.grid_size)),
                tf.sqrt(tf.maximum(w, 0.0) / (cell_w * self.grid_size)),
            ],
            axis=-1,
        )

    def decode(self, values, cells):
        """Boxes from values (the inverse of `encode`).

        Args:
            values: ``[..., 4]`` ``(ty, tx, √(h / H), √(w / W))``.
            cells: ``[..., 4]`` absolute ``yxyx``, broadcastable with ``values``.

        Returns:
            float32 ``[..., 4]`` absolute ``yxyx``.
        """
        values = tf.cast(values, tf.float32)
        cells = tf.cast(cells, tf.float32)
        cell_h = cells[..., 2] - cells[..., 0]
        cell_w = cells[..., 3] - cells[..., 1]
        cy = cells[..., 0] + values[..., 0] * cell_h
        cx = cells[..., 1] + values[..., 1] * cell_w
        h = tf.square(values[..., 2]) * cell_h * self.grid_size
        w = tf.square(values[..., 3]) * cell_w * self.grid_size
        return _corners(cy, cx, h, w)


class PriorCellCoder:
    """The multiscale YOLO's parameterisation against priors tiled on the maps.

    Values ``(ty, tx, th, tw)`` in ``[0, 1]``: the centre
    ``prior centre + (t - 0.5) · stride`` (anywhere in the prior's cell) and
    the size ``prior size · (2 t)²`` (0 to 4 times the prior).

    Args:
        strides: the stride of each prior's map, ``[N]`` (or a scalar),
            aligned with the priors given to `encode` / `decode`.
    """

    def __init__(self, strides):
        self.strides = tf.constant(strides, tf.float32)

    def encode(self, boxes, priors):
        """Values of ``boxes`` against ``priors`` (``[..., N, 4]`` absolute ``yxyx`` both)
        → float32 ``[..., N, 4]``."""
        y, x, h, w = _centre_size(boxes)
        py, px, ph, pw = _centre_size(priors)
        return tf.stack(
            [
                (y - py) / self.strides + 0.5,
                (x - px) / self.strides + 0.5,
                tf.sqrt(tf.maximum(h, 0.0) / ph) / 2.0,
                tf.sqrt(tf.maximum(w, 0.0) / pw) / 2.0,
            ],
            axis=-1,
        )

    def decode(self, values, priors):
        """Boxes from values ``[..., N, 4]`` against ``priors`` ``[..., N, 4]``
        → float32 ``[..., N, 4]`` absolute ``yxyx``."""
        t = tf.cast(values, tf.float32)
        py, px, ph, pw = _centre_size(priors)
        cy = py + (t[..., 0] - 0.5) * self.strides
        cx = px + (t[..., 1] - 0.5) * self.strides
        h = ph * tf.square(2.0 * t[..., 2])
        w = pw * tf.square(2.0 * t[..., 3])
        return _corners(cy, cx, h, w)
