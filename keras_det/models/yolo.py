"""YOLO: v1's S×S grid (Redmon et al., 2016) and a multiscale YOLOv3-style
detector with an FPN/PAN neck and IoU-aware box loss.

``variant="v1"``::

    images ─ backbone ─ C5 ─ YOLOv1Head (convs, FC) ─ [S, S, B·5 + C] ─ P(class)·confidence ─ NMS

* The cell that holds a GT centre is responsible for it (one object per
  cell: the largest one when centres collide); among its ``B`` predictors the
  one whose predicted box has the highest IoU with the GT learns it.
* Each predictor gives ``(y, x)`` of the centre inside its cell, ``(√h, √w)``
  relative to the image and a confidence; each cell one class distribution.
* Loss (summed over the grid, averaged over the batch), as the paper:
  ``λ_coord Σ 1obj [(x-x̂)² + (y-ŷ)² + (√w-√ŵ)² + (√h-√ĥ)²]`` (``coord_loss``)
  ``+ Σ 1obj (C - IoU)²`` (``obj_loss``) ``+ λ_noobj Σ 1noobj C²``
  (``noobj_loss``) ``+ Σ_cells 1obj Σ_c (p(c) - p̂(c))²`` (``class_loss``), with
  λ_coord = 5 and λ_noobj = 0.5.
* Head: the paper's stride-2 conv (14×14 → 7×7 at 448 px) is applied only
  when C5 is at least ``2 S`` wide, so small inputs keep their few cells.
* Deviations, for training stability from scratch: box values and
  confidences pass through a sigmoid (the paper's last layer is linear and
  predicts √h, √w directly), and class probabilities through a softmax.

``variant="multiscale"``::

    images ─ backbone ─ C3, C4, C5 ─ YOLONeck (FPN + PAN) ─ YOLOHead ─ per prior: box, objectness, classes

* Three scales (strides 8, 16, 32), three priors each (YOLOv3's COCO priors
  scaled to the image size by default; ``keras_det.ops.anchors.kmeans_anchors``
  computes them from training boxes, ``priors_per_level`` splits them).
* Assignment (YOLOv3): each GT goes to the prior with the highest
  width/height IoU (over all scales), in the cell of that scale that holds
  its centre — the matching is ``TargetEncoder`` with a "wh-IoU if the centre
  is in the cell" similarity and only each GT's best prediction positive.
* Box decoding: centre ``(i + σ(ty)) · stride``, size ``prior · (2 σ(th))²``
  (YOLOv5's bounded size, stable under an IoU loss).
* Losses: ``box_loss`` = mean over positives of ``1 - CIoU`` (or GIoU),
  ``objectness_loss`` = mean BCE on positives + mean BCE on negatives
  (predictions whose box overlaps a GT by more than ``ignore_threshold`` are
  not negatives), ``class_loss`` = sigmoid BCE on positives (sum over
  classes, mean over positives).
* Inference: score = σ(objectness) · σ(class), per-class NMS.
"""

import math

import keras
import numpy as np
import tensorflow as tf

from keras_det import losses as loss_ops
from keras_det.backbones import build_backbone
from keras_det.layers.decoder import DetectionDecoder
from keras_det.layers.yolo_head import YOLOHead, YOLONeck, YOLOv1Head
from keras_det.models.base import Detector
from keras_det.ops import anchors as anchor_ops
from keras_det.ops import boxes as box_ops
from keras_det.ops import iou_losses
from keras_det.ops.matching import Matcher
from keras_det.ops.targets import TargetEncoder

VARIANTS = ("v1", "multiscale")

# YOLOv3's COCO priors (width, height) for 416×416 inputs, finest scale first.
YOLOV3_PRIORS = (
    ((10, 13), (16, 30), (33, 23)),
    ((30, 61), (62, 45), (59, 119)),
    ((116, 90), (156, 198), (373, 326)),
)

_STRIDES = (8, 16, 32)


def priors_per_level(priors_wh, num_levels=3):
    """Splits ``[k, 2]`` (width, height) priors sorted by area into ``num_levels``
    groups, smallest first (e.g. the output of ``kmeans_anchors``)."""
    priors = np.asarray(priors_wh, np.float32).reshape(-1, 2)
    if len(priors) % num_levels:
        raise ValueError(f"{len(priors)} priors cannot be split into {num_levels} equal levels.")
    priors = priors[np.argsort(priors[:, 0] * priors[:, 1])]
    return tuple(tuple(tuple(float(v) for v in p) for p in group) for group in np.split(priors, num_levels))


def prior_grid(feature_shape, stride, priors_wh):
    """Prior boxes of arbitrary ``(width, height)`` tiled on a feature map.

    The layout of ``keras_det.ops.anchors.grid_anchors`` (row-major over cells,
    then the priors of a cell, centred on the cell) for a list of free
    width/height pairs instead of a sizes × ratios product.

    Returns:
        float32 ``[h * w * len(priors_wh), 4]`` absolute ``yxyx``.
    """
    per_prior = [
        anchor_ops.grid_anchors(feature_shape, stride, sizes=(math.sqrt(w * h),), aspect_ratios=(h / w,))
        for w, h in priors_wh
    ]
    return tf.reshape(tf.stack(per_prior, axis=1), [-1, 4])


def _centre(boxes):
    return (boxes[..., 0] + boxes[..., 2]) / 2.0, (boxes[..., 1] + boxes[..., 3]) / 2.0


class GridCellCoder:
    """YOLO v1 box targets against the grid cells (a ``TargetEncoder`` box coder).

    ``encode(boxes, cells)`` → ``(ty, tx, √(h / H), √(w / W))``: the box centre
    relative to the cell's top-left corner in cell units, and the square roots
    of the box size relative to the image (``H = S · cell height``).
    """

    def __init__(self, grid_size):
        self.grid_size = int(grid_size)

    def encode(self, boxes, cells):
        cy, cx = _centre(boxes)
        cell_h = cells[..., 2] - cells[..., 0]
        cell_w = cells[..., 3] - cells[..., 1]
        h = tf.maximum(boxes[..., 2] - boxes[..., 0], 0.0)
        w = tf.maximum(boxes[..., 3] - boxes[..., 1], 0.0)
        return tf.stack(
            [
                (cy - cells[..., 0]) / cell_h,
                (cx - cells[..., 1]) / cell_w,
                tf.sqrt(h / (cell_h * self.grid_size)),
                tf.sqrt(w / (cell_w * self.grid_size)),
            ],
            axis=-1,
        )


def _cell_index(coord, stride, size):
    return tf.clip_by_value(tf.floor(coord / stride), 0.0, size - 1.0)


@keras.saving.register_keras_serializable(package="keras_det")
class YOLO(Detector):
    """YOLO detector (``variant="v1"`` or ``"multiscale"``) on a fixed input size.

    Args:
        num_classes: object classes (0-based labels).
        backbone: name from ``keras_det.backbones.BACKBONES`` or a Keras model.
        backbone_weights: ``"imagenet"``, ``None`` or a local weights file.
        bounding_box_format: format of the boxes given to ``fit`` and returned
            by ``predict``.
        variant: ``"v1"`` or ``"multiscale"``.
        image_size: ``(H, W)``; ``None``: 448×448 (v1) or 416×416 (multiscale).
        grid_size, boxes_per_cell: v1's ``S`` (7) and ``B`` (2).
        head_filters: channels of the head convolutions.
        fc_dim, dropout: v1's hidden FC layer (512 here, 4096 in the paper) and its dropout.
        lambda_coord, lambda_noobj: v1 loss weights (5, 0.5).
        confidence_target: v1 confidence target of a responsible predictor:
            ``"iou"`` (the paper: IoU of its box with the GT) or ``"one"``.
        priors: multiscale priors, one sequence of ``(width, height)`` pixels
            per scale (finest first); ``None``: YOLOv3's COCO priors scaled
            from 416 to ``image_size``.
        neck_filters: channels of the FPN/PAN neck.
        box_loss: ``"ciou"`` or ``"giou"`` (multiscale).
        ignore_threshold: predictions whose box has IoU above it with a GT are
            not objectness negatives (0.5, YOLOv3).
        score_threshold, nms_iou_threshold, max_detections, pre_nms_topk:
            decoding (0.005 — darknet's threshold for mAP evaluation: v1's
            class-specific confidences are small early in training —, NMS
            0.5, 100 detections, 1000 candidates).

    Call: float32 images ``[B, H, W, 3]`` in 0..255 → prediction dict
    (``boxes [B, K, 4]`` in ``bounding_box_format``, ``scores [B, K]``,
    ``labels [B, K]`` int32 with -1 padding, ``num_detections [B]``).
    """

    v1_loss_keys = ("coord_loss", "obj_loss", "noobj_loss", "class_loss")
    multiscale_loss_keys = ("box_loss", "objectness_loss", "class_loss")

    def __init__(
        self,
        num_classes,
        backbone="mobilenet_v2",
        backbone_weights=None,
        bounding_box_format="xyxy",
        variant="v1",
        image_size=None,
        grid_size=7,
        boxes_per_cell=2,
        head_filters=256,
        fc_dim=512,
        dropout=0.5,
        lambda_coord=5.0,
        lambda_noobj=0.5,
        confidence_target="iou",
        priors=None,
        neck_filters=128,
        box_loss="ciou",
        ignore_threshold=0.5,
        score_threshold=0.005,
        nms_iou_threshold=0.5,
        max_detections=100,
        pre_nms_topk=1000,
        **kwargs,
    ):
        if variant not in VARIANTS:
            raise ValueError(f"`variant` must be one of {VARIANTS}, got {variant!r}.")
        keys = self.v1_loss_keys if variant == "v1" else self.multiscale_loss_keys
        super().__init__(bounding_box_format=bounding_box_format, loss_names=keys, **kwargs)
        if confidence_target not in ("iou", "one"):
            raise ValueError(f"`confidence_target` must be 'iou' or 'one', got {confidence_target!r}.")
        if box_loss not in ("ciou", "giou"):
            raise ValueError(f"`box_loss` must be 'ciou' or 'giou', got {box_loss!r}.")
        if image_size is None:
            image_size = (448, 448) if variant == "v1" else (416, 416)
        self.variant = variant
        self.num_classes = int(num_classes)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.backbone_name = backbone if isinstance(backbone, str) else None
        self.grid_size = int(grid_size)
        self.boxes_per_cell = int(boxes_per_cell)
        self.lambda_coord = float(lambda_coord)
        self.lambda_noobj = float(lambda_noobj)
        self.confidence_target = confidence_target
        self.box_loss_kind = box_loss
        self.ignore_threshold = float(ignore_threshold)
        height, width = self.image_size
        if variant == "multiscale":
            if priors is None:
                sy, sx = height / 416.0, width / 416.0
                priors = tuple(tuple((w * sx, h * sy) for w, h in level) for level in YOLOV3_PRIORS)
            priors = tuple(tuple((float(w), float(h)) for w, h in level) for level in priors)
            if len(priors) != 3:
                raise ValueError(f"`priors` needs one sequence per scale (3), got {len(priors)}.")
        self.priors = priors
        self.config_args = {
            "num_classes": self.num_classes,
            "backbone": self.backbone_name,
            "backbone_weights": None,
            "bounding_box_format": bounding_box_format,
            "variant": variant,
            "image_size": self.image_size,
            "grid_size": self.grid_size,
            "boxes_per_cell": self.boxes_per_cell,
            "head_filters": head_filters,
            "fc_dim": fc_dim,
            "dropout": dropout,
            "lambda_coord": self.lambda_coord,
            "lambda_noobj": self.lambda_noobj,
            "confidence_target": confidence_target,
            "priors": priors,
            "neck_filters": neck_filters,
            "box_loss": box_loss,
            "ignore_threshold": self.ignore_threshold,
            "score_threshold": score_threshold,
            "nms_iou_threshold": nms_iou_threshold,
            "max_detections": max_detections,
            "pre_nms_topk": pre_nms_topk,
        }
        taps = ("C5",) if variant == "v1" else ("C3", "C4", "C5")
        self.taps = taps
        self.backbone = build_backbone(backbone, backbone_weights, (height, width, 3), taps=taps)
        self.decoder = DetectionDecoder(
            None, score_threshold, nms_iou_threshold, max_detections, pre_nms_topk,
            bounding_box_format=bounding_box_format, name="decoder",
        )
        if variant == "v1":
            # The paper's stride-2 conv takes a 14×14 C5 (448 px) to 7×7; smaller maps keep their size.
            c5_side = min(int(d) for d in self.backbone.output["C5"].shape[1:3])
            self.head = YOLOv1Head(
                self.grid_size, self.boxes_per_cell, self.num_classes, head_filters, fc_dim, dropout,
                downsample=c5_side >= 2 * self.grid_size, name="yolo_v1_head",
            )
            s = self.grid_size
            cell_h, cell_w = height / s, width / s
            # The grid cells as "anchors": row-major, one per cell.
            self.cells = prior_grid((s, s), (cell_h, cell_w), [(cell_w, cell_h)]).numpy()
            self.target_encoder = TargetEncoder(
                Matcher((0.5,), (0, 1)), None, GridCellCoder(s), similarity_fn=self._centre_in_cell_v1
            )
        else:
            self.neck = YOLONeck(neck_filters, name="neck")
            self.head = YOLOHead(self.num_classes, [len(p) for p in priors], head_filters, name="yolo_head")
            levels, strides, rows, cols, heights, widths = [], [], [], [], [], []
            # Map sizes from the backbone itself ('same' backbones ceil, VGG16 floors).
            map_sizes = [tuple(int(d) for d in self.backbone.output[t].shape[1:3]) for t in self.taps]
            self.feature_map_sizes = map_sizes
            for stride, level_priors, (fh, fw) in zip(_STRIDES, priors, map_sizes):
                levels.append(prior_grid((fh, fw), stride, level_priors).numpy())
                a = len(level_priors)
                r, c = np.meshgrid(np.arange(fh), np.arange(fw), indexing="ij")
                rows.append(np.repeat(r.reshape(-1), a))
                cols.append(np.repeat(c.reshape(-1), a))
                n = fh * fw * a
                strides.append(np.full(n, stride))
                heights.append(np.full(n, fh))
                widths.append(np.full(n, fw))
            self.prior_boxes = np.concatenate(levels).astype(np.float32)
            self.prior_stride = np.concatenate(strides).astype(np.float32)
            self.prior_row = np.concatenate(rows).astype(np.float32)
            self.prior_col = np.concatenate(cols).astype(np.float32)
            self.prior_map_h = np.concatenate(heights).astype(np.float32)
            self.prior_map_w = np.concatenate(widths).astype(np.float32)
            self.target_encoder = TargetEncoder(
                # No threshold is ever reached: positives are only each GT's best prediction.
                Matcher((2.0,), (0, 1), allow_low_quality_matches=True),
                None,
                box_ops.BoxCoder(box_ops.UNIT_BOX_WEIGHTS),
                similarity_fn=self._prior_similarity,
            )

    # -- matching similarities --------------------------------------------------
    def _centre_in_cell_v1(self, cells, gt_boxes):
        """1 (+ a tie-break favouring larger boxes) when the GT centre is in the cell."""
        s = float(self.grid_size)
        height, width = self.image_size
        cy, cx = _centre(gt_boxes)  # [B, M]
        gi = _cell_index(cy, height / s, s)
        gj = _cell_index(cx, width / s, s)
        ccy, ccx = _centre(cells)  # [B, N]
        ci = _cell_index(ccy, height / s, s)
        cj = _cell_index(ccx, width / s, s)
        inside = tf.cast((ci[..., :, None] == gi[..., None, :]) & (cj[..., :, None] == gj[..., None, :]), tf.float32)
        area = box_ops.area(gt_boxes) / float(height * width)
        return inside * (1.0 + 0.5 * tf.minimum(area, 1.0)[..., None, :])

    def _prior_similarity(self, priors, gt_boxes):
        """Width/height IoU of prior and GT when the GT centre is in the prior's cell, else 0."""
        cy, cx = _centre(gt_boxes)  # [B, M]
        stride = self.prior_stride[:, None]
        gi = tf.clip_by_value(tf.floor(cy[..., None, :] / stride), 0.0, self.prior_map_h[:, None] - 1.0)
        gj = tf.clip_by_value(tf.floor(cx[..., None, :] / stride), 0.0, self.prior_map_w[:, None] - 1.0)
        inside = (gi == self.prior_row[:, None]) & (gj == self.prior_col[:, None])  # [B, N, M]
        ph = priors[..., 2] - priors[..., 0]
        pw = priors[..., 3] - priors[..., 1]
        gh = gt_boxes[..., 2] - gt_boxes[..., 0]
        gw = gt_boxes[..., 3] - gt_boxes[..., 1]
        inter = tf.minimum(ph[..., :, None], gh[..., None, :]) * tf.minimum(pw[..., :, None], gw[..., None, :])
        union = (ph * pw)[..., :, None] + (gh * gw)[..., None, :] - inter
        return tf.where(inside, tf.math.divide_no_nan(inter, union), 0.0)

    # -- forward --------------------------------------------------------------
    def head_outputs(self, images, training=False):
        """Raw outputs: v1 ``[B, S, S, 5B + C]``; multiscale ``[B, N, 5 + C]``."""
        images = tf.cast(images, tf.float32)
        images = self.check_image_size(images)
        taps = self.backbone(images, training=training)
        if self.variant == "v1":
            return self.head(taps["C5"], training=training)
        return self.head(self.neck([taps[t] for t in self.taps], training=training), training=training)

    def decode_v1(self, raw):
        """v1 raw grid → ``(boxes [B, S·S, B, 4]`` absolute ``yxyx``, ``confidence [B, S·S, B]``,
        ``class_probs [B, S·S, C]``, ``box_values [B, S·S, B, 4]`` = σ outputs ``(y, x, √h, √w)``)."""
        s, nb = self.grid_size, self.boxes_per_cell
        height, width = self.image_size
        raw = tf.reshape(raw, [tf.shape(raw)[0], s * s, 5 * nb + self.num_classes])
        per_box = tf.sigmoid(tf.reshape(raw[..., : 5 * nb], [-1, s * s, nb, 5]))
        values, confidence = per_box[..., :4], per_box[..., 4]
        class_probs = tf.nn.softmax(raw[..., 5 * nb :], axis=-1)
        cells = tf.constant(self.cells)[None, :, None, :]  # [1, S·S, 1, 4]
        cy = cells[..., 0] + values[..., 0] * (height / s)
        cx = cells[..., 1] + values[..., 1] * (width / s)
        h = tf.square(values[..., 2]) * height
        w = tf.square(values[..., 3]) * width
        boxes = tf.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], axis=-1)
        return boxes, confidence, class_probs, values

    def decode_multiscale(self, raw):
        """Multiscale raw ``[B, N, 5 + C]`` → ``(boxes [B, N, 4]`` absolute ``yxyx``,
        objectness logits ``[B, N]``, class logits ``[B, N, C])``."""
        priors = tf.constant(self.prior_boxes)
        stride = tf.constant(self.prior_stride)
        pcy, pcx = _centre(priors)
        ph = priors[:, 2] - priors[:, 0]
        pw = priors[:, 3] - priors[:, 1]
        t = tf.sigmoid(raw[..., :4])
        cy = pcy + (t[..., 0] - 0.5) * stride
        cx = pcx + (t[..., 1] - 0.5) * stride
        h = ph * tf.square(2.0 * t[..., 2])
        w = pw * tf.square(2.0 * t[..., 3])
        boxes = tf.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], axis=-1)
        return boxes, raw[..., 4], raw[..., 5:]

    def call(self, images, training=False):
        raw = self.head_outputs(images, training)
        image_shape = tf.constant(self.image_size)
        if self.variant == "v1":
            boxes, confidence, class_probs, _ = self.decode_v1(raw)
            # Class-specific confidence P(class | object) · confidence, per predictor.
            scores = confidence[..., None] * class_probs[:, :, None, :]  # [B, S·S, nb, C]
            batch = tf.shape(boxes)[0]
            boxes = tf.reshape(boxes, [batch, -1, 4])
            scores = tf.reshape(scores, [batch, -1, self.num_classes])
        else:
            boxes, objectness, class_logits = self.decode_multiscale(raw)
            scores = tf.sigmoid(objectness)[..., None] * tf.sigmoid(class_logits)
        return self.decoder(boxes, boxes, scores, image_shape)

    # -- training -------------------------------------------------------------
    def v1_targets(self, gt_boxes, gt_labels):
        """v1 targets on the grid.

        Args:
            gt_boxes: ``[B, M, 4]`` absolute ``yxyx``; gt_labels: ``[B, M]`` (-1 padding).

        Returns:
            dict (grid-shaped, ``S × S`` row-major) ``object_mask [B, S, S]``
            float (1 where a GT centre falls), ``labels [B, S, S]`` int32
            (0-based class, -1 empty), ``box_targets [B, S, S, 4]``
            ``(ty, tx, √(h/H), √(w/W))``, ``boxes [B, S, S, 4]`` the GT box
            (absolute ``yxyx``, zeros where empty).
        """
        t = self.target_encoder(self.cells, gt_boxes, gt_labels)
        s = self.grid_size
        grid = lambda x, *tail: tf.reshape(x, [-1, s, s, *tail])  # noqa: E731
        return {
            "object_mask": grid(t["box_weights"]),
            "labels": grid(t["labels"] - 1),
            "box_targets": grid(t["box_targets"], 4),
            "boxes": grid(t["matched_boxes"], 4),
        }

    def v1_losses(self, raw, gt_boxes, gt_labels):
        """The YOLO v1 sum-squared loss terms (see the module docstring)."""
        s = self.grid_size
        t = self.v1_targets(gt_boxes, gt_labels)
        obj = tf.reshape(t["object_mask"], [-1, s * s])
        target_boxes = tf.reshape(t["boxes"], [-1, s * s, 1, 4])
        target_values = tf.reshape(t["box_targets"], [-1, s * s, 1, 4])
        labels = tf.reshape(t["labels"], [-1, s * s])
        boxes, confidence, class_probs, values = self.decode_v1(raw)
        ious = tf.stop_gradient(iou_losses.elementwise_iou(boxes, target_boxes))  # [B, S·S, nb]
        responsible = tf.one_hot(tf.argmax(ious, axis=-1), self.boxes_per_cell) * obj[..., None]
        batch = tf.cast(tf.shape(raw)[0], tf.float32)
        coord = tf.reduce_sum(responsible * tf.reduce_sum(tf.square(values - target_values), -1))
        conf_target = ious if self.confidence_target == "iou" else tf.ones_like(ious)
        obj_loss = tf.reduce_sum(responsible * tf.square(confidence - conf_target))
        noobj = tf.reduce_sum((1.0 - responsible) * tf.square(confidence))
        onehot = tf.one_hot(tf.maximum(labels, 0), self.num_classes)
        class_loss = tf.reduce_sum(obj * tf.reduce_sum(tf.square(class_probs - onehot), -1))
        return {
            "coord_loss": self.lambda_coord * coord / batch,
            "obj_loss": obj_loss / batch,
            "noobj_loss": self.lambda_noobj * noobj / batch,
            "class_loss": class_loss / batch,
        }

    def multiscale_targets(self, gt_boxes, gt_labels):
        """``TargetEncoder`` output for the priors (positives: each GT's best prior in its centre cell)."""
        return self.target_encoder(self.prior_boxes, gt_boxes, gt_labels)

    def multiscale_losses(self, raw, gt_boxes, gt_labels):
        """Box (1 - CIoU/GIoU), objectness and class losses (see the module docstring)."""
        t = self.multiscale_targets(gt_boxes, gt_labels)
        positive = t["box_weights"]  # [B, N]
        num_pos = tf.reduce_sum(positive)
        boxes, objectness, class_logits = self.decode_multiscale(raw)
        overlap = iou_losses.ciou if self.box_loss_kind == "ciou" else iou_losses.giou
        box_terms = 1.0 - overlap(boxes, tf.where(positive[..., None] > 0, t["matched_boxes"], boxes))
        box_loss = tf.reduce_sum(box_terms * positive) / loss_ops.replica_normalizer(num_pos)
        valid = gt_labels >= 0
        pairwise = tf.where(valid[:, None, :], box_ops.iou(tf.stop_gradient(boxes), gt_boxes), 0.0)
        # A zero column keeps the max defined for M == 0.
        best_iou = tf.reduce_max(tf.concat([pairwise, tf.zeros_like(positive)[..., None]], -1), axis=-1)
        negative = tf.cast((positive == 0) & (best_iou <= self.ignore_threshold), tf.float32)
        objectness_loss = loss_ops.binary_cross_entropy(objectness, positive, positive) + loss_ops.binary_cross_entropy(
            objectness, tf.zeros_like(positive), negative
        )
        onehot = tf.one_hot(tf.maximum(t["labels"] - 1, 0), self.num_classes)
        class_weights = tf.broadcast_to(positive[..., None], tf.shape(onehot))
        class_loss = loss_ops.binary_cross_entropy(class_logits, onehot, class_weights, normalizer=num_pos)
        return {"box_loss": box_loss, "objectness_loss": objectness_loss, "class_loss": class_loss}

    def compute_detection_losses(self, images, gt_boxes, gt_labels, training=True, **extras):
        raw = self.head_outputs(images, training)
        if self.variant == "v1":
            return self.v1_losses(raw, gt_boxes, gt_labels)
        return self.multiscale_losses(raw, gt_boxes, gt_labels)

