"""YOLO v1 (Redmon et al., 2016): one S×S grid, B boxes per cell, a fully
connected head.

::

    images ─ backbone ─ C5 ─ YOLOv1Head (convs, FC) ─ [S, S, B·5 + C]
           ─ σ ─ GridCellCoder.decode ─ P(class) · confidence ─ NMS

* The cell that holds a GT centre is responsible for it (one object per
  cell: the largest one when centres collide); among its ``B`` predictors the
  one whose predicted box has the highest IoU with the GT learns it.
* Each predictor gives ``(y, x)`` of the centre inside its cell, ``(√h, √w)``
  relative to the image (`keras_det.ops.grid_coders.GridCellCoder`, the one
  coder of the targets and of the decoding) and a confidence; each cell one
  class distribution.
* Loss: `keras_det.losses.yolo_v1_loss` (the paper's sum-squared terms
  ``coord_loss``, ``obj_loss``, ``noobj_loss``, ``class_loss``; λcoord = 5,
  λnoobj = 0.5), summed over the grid and averaged over the batch;
  ``class_loss="ce"`` / ``confidence_loss="bce"`` put cross-entropies in place
  of the class and confidence squares (what learns from scratch: the
  ``yolo_v1_cpu`` preset, docs/single_stage.md).
* Head: the paper's stride-2 conv (14×14 → 7×7 at 448 px) is applied only
  when the tapped map is at least ``2 S`` wide, so small inputs keep their
  cells.
* Deviations, for training stability from scratch: box values and
  confidences pass through a sigmoid (the paper's last layer is linear and
  predicts √h, √w directly), and class probabilities through a softmax.
* Inference: class-specific confidence ``P(class | object) · confidence``
  per predictor, per-class NMS.
"""

import keras
import tensorflow as tf

from keras_det import losses as loss_ops
from keras_det.backbones import build_backbone, tap_stride
from keras_det.layers.decoder import DetectionDecoder
from keras_det.layers.yolo_head import YOLOv1Head
from keras_det.models.base import Detector
from keras_det.ops import boxes as box_ops
from keras_det.ops.anchors import prior_grid
from keras_det.ops.grid_coders import GridCellCoder
from keras_det.ops.image import image_hw
from keras_det.ops.matching import Matcher
from keras_det.ops.targets import TargetEncoder


def _centre(boxes):
    return (boxes[..., 0] + boxes[..., 2]) / 2.0, (boxes[..., 1] + boxes[..., 3]) / 2.0


def _cell_index(coord, cell, size):
    return tf.clip_by_value(tf.floor(coord / cell), 0.0, size - 1.0)


@keras.saving.register_keras_serializable(package="keras_det")
class YOLOv1(Detector):
    """YOLO v1 detector on a fixed input size.

    Args:
        num_classes: object classes (0-based labels).
        backbone: name from ``keras_det.backbones.BACKBONES`` or a Keras model.
        backbone_weights: ``"imagenet"``, ``None`` or a local weights file.
        bounding_box_format: format of the boxes given to ``fit`` and returned
            by ``predict``.
        image_size: ``(H, W)``; ``None``: 448×448, the paper's.
        grid_size, boxes_per_cell: ``S`` (7) and ``B`` (2).
        feature_tap: backbone map the head reads (``"C5"``, the paper's;
            ``"C4"`` keeps twice the resolution on small images).
        head_filters: channels of the head convolutions.
        fc_dim, dropout: the hidden FC layer (512 here, 4096 in the paper) and
            its dropout (0.5 in the paper).
        head_local: add the head's per-cell path (``YOLOv1Head(local=True)``:
            a shared 1×1 conv on the map pooled to ``S × S``, summed with the FC output).
        lambda_coord, lambda_noobj: loss weights (5, 0.5).
        confidence_target: target confidence of a responsible predictor:
            ``"iou"`` (the paper: IoU of its box with the GT) or ``"one"``.
        class_loss, confidence_loss: ``"sse"`` (the paper's squared errors)
            or the cross-entropies ``"ce"`` / ``"bce"``
            (`keras_det.losses.yolo_v1_loss`; what learns from scratch).
        score_threshold, nms_iou_threshold, max_detections, pre_nms_topk:
            decoding (0.005 — darknet's threshold for mAP evaluation: the
            class-specific confidences are small early in training —, NMS
            0.5, 100 detections, 1000 candidates).

    Call: float32 images ``[B, H, W, 3]`` in 0..255 → prediction dict
    (``boxes [B, K, 4]`` in ``bounding_box_format``, ``scores [B, K]``,
    ``labels [B, K]`` int32 with -1 padding, ``num_detections [B]``).
    """

    loss_keys = ("coord_loss", "obj_loss", "noobj_loss", "class_loss")

    def __init__(
        self,
        num_classes,
        backbone="mobilenet_v2",
        backbone_weights=None,
        bounding_box_format="xyxy",
        image_size=None,
        grid_size=7,
        boxes_per_cell=2,
        feature_tap="C5",
        head_filters=256,
        fc_dim=512,
        dropout=0.5,
        head_local=False,
        lambda_coord=5.0,
        lambda_noobj=0.5,
        confidence_target="iou",
        class_loss="sse",
        confidence_loss="sse",
        score_threshold=0.005,
        nms_iou_threshold=0.5,
        max_detections=100,
        pre_nms_topk=1000,
        **kwargs,
    ):
        super().__init__(bounding_box_format=bounding_box_format, loss_names=self.loss_keys, **kwargs)
        loss_ops.check_yolo_v1_options(confidence_target, class_loss, confidence_loss)
        tap_stride(feature_tap, allowed=("C3", "C4", "C5"), name="feature_tap")
        if int(grid_size) < 1 or int(boxes_per_cell) < 1:
            raise ValueError(f"`grid_size` and `boxes_per_cell` must be >= 1, got {grid_size!r} and {boxes_per_cell!r}.")
        self.num_classes = int(num_classes)
        self.image_size = (448, 448) if image_size is None else image_hw(image_size)
        self.backbone_name = backbone if isinstance(backbone, str) else None
        self.grid_size = int(grid_size)
        self.boxes_per_cell = int(boxes_per_cell)
        self.feature_tap = feature_tap
        self.lambda_coord = float(lambda_coord)
        self.lambda_noobj = float(lambda_noobj)
        self.confidence_target = confidence_target
        self.class_loss = class_loss
        self.confidence_loss = confidence_loss
        height, width = self.image_size
        self.backbone = build_backbone(backbone, backbone_weights, (height, width, 3), taps=(feature_tap,))
        self.decoder = DetectionDecoder(
            None, score_threshold, nms_iou_threshold, max_detections, pre_nms_topk,
            bounding_box_format=bounding_box_format, name="decoder",
        )
        # The paper's stride-2 conv takes a 14×14 C5 (448 px) to 7×7; smaller maps keep their size.
        side = min(int(d) for d in self.backbone.output[feature_tap].shape[1:3])
        s = self.grid_size
        self.head = YOLOv1Head(
            s, self.boxes_per_cell, self.num_classes, head_filters, fc_dim, dropout,
            downsample=side >= 2 * s, local=head_local, name="yolo_v1_head",
        )
        # The grid cells as reference boxes: row-major, one per cell.
        cell_h, cell_w = height / s, width / s
        self.cells = prior_grid((s, s), (cell_h, cell_w), [(cell_w, cell_h)]).numpy()
        self.box_coder = GridCellCoder(s)
        self.target_encoder = TargetEncoder(
            Matcher((0.5,), (0, 1)), None, self.box_coder, similarity_fn=self._centre_in_cell
        )

    def _centre_in_cell(self, cells, gt_boxes):
        """1 (+ a tie-break favouring larger boxes) when the GT centre is in the cell, else 0."""
        s = float(self.grid_size)
        height, width = self.image_size
        cy, cx = _centre(gt_boxes)  # [B, M]
        gi, gj = _cell_index(cy, height / s, s), _cell_index(cx, width / s, s)
        ccy, ccx = _centre(cells)  # [B, N]
        ci, cj = _cell_index(ccy, height / s, s), _cell_index(ccx, width / s, s)
        inside = tf.cast((ci[..., :, None] == gi[..., None, :]) & (cj[..., :, None] == gj[..., None, :]), tf.float32)
        area = box_ops.area(gt_boxes) / float(height * width)
        return inside * (1.0 + 0.5 * tf.minimum(area, 1.0)[..., None, :])

    # -- forward --------------------------------------------------------------
    def head_outputs(self, images, training=False):
        """Raw head outputs ``[B, S, S, 5B + C]``."""
        images = tf.cast(images, tf.float32)
        images = self.check_image_size(images)
        return self.head(self.backbone(images, training=training)[self.feature_tap], training=training)

    def decode(self, raw):
        """Raw grid → dict (``N = S·S`` cells, row-major; ``nb = B``):
        ``boxes [B, N, nb, 4]`` absolute ``yxyx``, ``confidence [B, N, nb]``,
        ``class_probs [B, N, C]``, ``values [B, N, nb, 4]`` = σ outputs ``(y, x, √h, √w)``,
        and the logits ``confidence_logits [B, N, nb]``, ``class_logits [B, N, C]``."""
        s, nb = self.grid_size, self.boxes_per_cell
        raw = tf.reshape(raw, [tf.shape(raw)[0], s * s, 5 * nb + self.num_classes])
        per_box_logits = tf.reshape(raw[..., : 5 * nb], [-1, s * s, nb, 5])
        per_box = tf.sigmoid(per_box_logits)
        values = per_box[..., :4]
        boxes = self.box_coder.decode(values, tf.constant(self.cells)[None, :, None, :])
        class_logits = raw[..., 5 * nb :]
        return {
            "boxes": boxes,
            "confidence": per_box[..., 4],
            "class_probs": tf.nn.softmax(class_logits, axis=-1),
            "values": values,
            "confidence_logits": per_box_logits[..., 4],
            "class_logits": class_logits,
        }

    def call(self, images, training=False):
        p = self.decode(self.head_outputs(images, training))
        # Class-specific confidence P(class | object) · confidence, per predictor.
        scores = p["confidence"][..., None] * p["class_probs"][:, :, None, :]  # [B, N, nb, C]
        batch = tf.shape(scores)[0]
        boxes = tf.reshape(p["boxes"], [batch, -1, 4])
        scores = tf.reshape(scores, [batch, -1, self.num_classes])
        return self.decoder(boxes, boxes, scores, tf.constant(self.image_size))

    # -- training -------------------------------------------------------------
    def targets(self, gt_boxes, gt_labels):
        """Targets on the grid.

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

    def loss_terms(self, raw, gt_boxes, gt_labels):
        """`keras_det.losses.yolo_v1_loss` of raw head outputs against padded ground truth."""
        n = self.grid_size * self.grid_size
        t = self.targets(gt_boxes, gt_labels)
        p = self.decode(raw)
        return loss_ops.yolo_v1_loss(
            p["values"], p["boxes"], p["confidence"], p["class_probs"],
            tf.reshape(t["box_targets"], [-1, n, 4]), tf.reshape(t["boxes"], [-1, n, 4]),
            tf.reshape(t["object_mask"], [-1, n]), tf.reshape(t["labels"], [-1, n]),
            lambda_coord=self.lambda_coord, lambda_noobj=self.lambda_noobj, confidence_target=self.confidence_target,
            class_loss=self.class_loss, confidence_loss=self.confidence_loss,
            class_logits=p["class_logits"], confidence_logits=p["confidence_logits"],
        )

    def compute_detection_losses(self, images, gt_boxes, gt_labels, training=True, **extras):
        return self.loss_terms(self.head_outputs(images, training), gt_boxes, gt_labels)
