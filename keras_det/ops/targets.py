"""One target encoder for every detector: match → sample → encode.

The RPN (anchors, objectness), Fast/Faster R-CNN's RoI head (proposals,
classes), SSD (default boxes) and YOLO (priors, or grid cells through a custom
``similarity_fn``) all turn padded ground truth into per-prediction training
targets the same way; only the Matcher thresholds, the sampler and the box
coder differ:

=================  ========================  =================  ==============
system             Matcher                   sampler            coder weights
=================  ========================  =================  ==============
RPN                [0.3, 0.7], low-quality   256, 50 %          (1, 1, 1, 1)
Fast/Faster head   [0.5] (bg [0.1, 0.5) ¹)   512 (64 / img), 25 %  (10, 10, 5, 5)
SSD                [0.5], low-quality        none (3:1 mining)  (10, 10, 5, 5)
=================  ========================  =================  ==============

¹ Fast R-CNN's background band is expressed as ``thresholds=[0.1, 0.5],
labels=[-1, 0, 1]``.

Class targets use ``0`` for background and ``label + 1`` for the 0-based
object class ``label`` (the data contract's labels), ``-1`` for predictions
that take no part in the classification loss.
"""

import tensorflow as tf

from keras_det.ops import boxes as box_ops
from keras_det.ops.matching import IGNORE, NEGATIVE, POSITIVE


class TargetEncoder:
    """Builds classification and box-regression targets.

    Args:
        matcher: a ``keras_det.ops.matching.Matcher``.
        sampler: optional ``BalancedSampler``; without one, every
            non-ignored prediction is used.
        box_coder: object with ``encode(boxes, anchors)``; defaults to
            ``BoxCoder()`` (Faster R-CNN deltas, ``RCNN_BOX_WEIGHTS``). Pass
            the same object to the head's decoder.
        similarity_fn: ``f(anchors [B, N, 4], gt_boxes [B, M, 4]) -> [B, N, M]``;
            defaults to IoU.
    """

    def __init__(self, matcher, sampler=None, box_coder=None, similarity_fn=None):
        self.matcher = matcher
        self.sampler = sampler
        self.box_coder = box_coder if box_coder is not None else box_ops.BoxCoder()
        self.similarity_fn = similarity_fn if similarity_fn is not None else box_ops.iou

    def __call__(self, anchors, gt_boxes, gt_labels, anchor_valid=None, seed=None):
        """Targets for a batch.

        Args:
            anchors: float ``[N, 4]`` shared by the batch, or ``[B, N, 4]``
                per image (proposals); absolute ``yxyx``.
            gt_boxes: float ``[B, M, 4]`` absolute ``yxyx`` (M may be 0).
            gt_labels: int ``[B, M]`` 0-based classes, ``-1`` for padding.
            anchor_valid: optional bool ``[N]`` or ``[B, N]``; invalid anchors
                (e.g. crossing the image border, or padded proposals) are
                ignored.
            seed: optional int making the sampler's draw reproducible.

        Returns:
            dict of
              ``labels`` int32 ``[B, N]``: -1 ignore, 0 background,
                ``class + 1`` foreground;
              ``box_targets`` float32 ``[B, N, 4]``: encoded deltas, zero
                where ``box_weights`` is 0;
              ``box_weights`` float32 ``[B, N]``: 1 for sampled positives;
              ``class_weights`` float32 ``[B, N]``: 1 for sampled predictions;
              ``matched_boxes`` float32 ``[B, N, 4]``: matched ground truth
                (absolute ``yxyx``; zeros for non-positives);
              ``matched_index`` int32 ``[B, N]``: index into ``M`` for
                positives, -1 otherwise;
              ``max_similarity`` float32 ``[B, N]``: best similarity (-1
                without valid ground truth).
        """
        gt_boxes = tf.convert_to_tensor(gt_boxes, tf.float32)
        gt_labels = tf.convert_to_tensor(gt_labels, tf.int32)
        anchors = tf.convert_to_tensor(anchors, tf.float32)
        batch = tf.shape(gt_boxes)[0]
        if anchors.shape.rank == 2:
            anchors = tf.broadcast_to(anchors[None], tf.concat([[batch], tf.shape(anchors)], 0))
        gt_valid = gt_labels >= 0
        similarity = tf.where(gt_valid[:, None, :], self.similarity_fn(anchors, gt_boxes), -1.0)
        matches, labels = self.matcher(similarity, gt_valid)
        if anchor_valid is not None:
            anchor_valid = tf.cast(anchor_valid, tf.bool)
            anchor_valid = tf.broadcast_to(anchor_valid, tf.shape(labels))
            labels = tf.where(anchor_valid, labels, IGNORE)

        if self.sampler is not None:
            positive, negative = self.sampler(labels, seed=seed)
        else:
            positive, negative = labels == POSITIVE, labels == NEGATIVE

        # A zero row appended to the ground truth keeps gathers valid when M == 0.
        zero_box = tf.zeros([batch, 1, 4], tf.float32)
        matched_boxes = tf.gather(tf.concat([gt_boxes, zero_box], 1), matches, batch_dims=1)
        matched_class = tf.gather(
            tf.concat([gt_labels, tf.zeros([batch, 1], tf.int32)], 1), matches, batch_dims=1
        )
        class_targets = tf.where(positive, matched_class + 1, tf.where(negative, 0, -1))
        pos_f = tf.cast(positive, tf.float32)
        # Encoding against non-positive anchors could divide by zero sizes
        # (padded proposals), so those rows are encoded against a unit box.
        safe_anchors = tf.where(positive[..., None], anchors, tf.constant([0.0, 0.0, 1.0, 1.0]))
        safe_boxes = tf.where(positive[..., None], matched_boxes, tf.constant([0.0, 0.0, 1.0, 1.0]))
        box_targets = self.box_coder.encode(safe_boxes, safe_anchors) * pos_f[..., None]
        max_similarity = tf.reduce_max(
            tf.concat([similarity, -tf.ones_like(similarity[..., :1])], -1), axis=-1
        )
        return {
            "labels": class_targets,
            "box_targets": box_targets,
            "box_weights": pos_f,
            "class_weights": tf.cast(positive | negative, tf.float32),
            "matched_boxes": matched_boxes * pos_f[..., None],
            "matched_index": tf.where(positive, matches, -1),
            "max_similarity": max_similarity,
        }


def select_sampled(targets, num, by="class_weights"):
    """Gathers the (at most ``num``) sampled rows of `TargetEncoder` targets into fixed-size tensors.

    The rows kept are those of largest ``targets[by]`` (``[B, N]``):
    ``"class_weights"`` picks the sampled RoIs, ``"box_weights"`` the positives.

    Args:
        targets: dict of ``[B, N, ...]`` tensors (a `TargetEncoder` output).
        num: rows to keep per image.
        by: the ``[B, N]`` entry that ranks the rows.

    Returns:
        ``(indices int32 [B, S], gathered targets [B, S, ...])`` with
        ``S = min(num, N)``; rows beyond the sample have zero weights.
    """
    n = tf.shape(targets[by])[1]
    _, idx = tf.math.top_k(targets[by], k=tf.minimum(num, n))
    return idx, {k: tf.gather(v, idx, batch_dims=1) for k, v in targets.items()}


def gather_class_deltas(deltas, labels):
    """Per-class deltas ``[B, R, K, 4]`` → ``[B, R, 4]`` of class ``labels - 1``.

    ``labels`` are class targets (``0`` background, ``k + 1`` class ``k``);
    background and ignored rows take class 0 (their weight is 0). A
    class-agnostic ``[B, R, 1, 4]`` is returned as ``[B, R, 4]``.
    """
    if deltas.shape[2] == 1:
        return deltas[:, :, 0, :]
    cls = tf.maximum(labels - 1, 0)
    return tf.gather(deltas, cls[..., None], batch_dims=2)[:, :, 0, :]


def mask_targets(gt_masks, matched_index, rois, output_size=(28, 28)):
    """Mask R-CNN mask targets: each RoI's matched GT mask, cropped and resized.

    The GT instance mask is bilinearly sampled at the centres of an
    ``output_size`` grid laid over the RoI (pixel ``i`` of a mask covers
    ``[i, i + 1)``) and binarised at 0.5 — the RoIAlign of the mask, as in
    He et al.

    Args:
        gt_masks: ``[B, M, H, W]`` instance masks (0/1, any dtype).
        matched_index: int ``[B, R]`` index into ``M`` (``-1`` → all-zero target).
        rois: ``[B, R, 4]`` absolute ``yxyx`` in the masks' pixel frame.
        output_size: ``(h, w)`` of the targets.

    Returns:
        float32 ``[B, R, h, w]`` in {0, 1}.
    """
    gt_masks = tf.cast(gt_masks, tf.float32)
    matched_index = tf.cast(matched_index, tf.int32)
    shape = tf.shape(gt_masks)
    batch, num_gt, height, width = shape[0], shape[1], shape[2], shape[3]
    rois = tf.cast(rois, tf.float32)
    num_rois = tf.shape(rois)[1]
    oh, ow = output_size
    h = tf.cast(height, tf.float32)
    w = tf.cast(width, tf.float32)
    y1, x1, y2, x2 = tf.unstack(rois, axis=-1)
    # First and last sample centres, in pixel-centre coordinates (pixel i at i).
    fy0 = y1 + 0.5 * (y2 - y1) / oh - 0.5
    fy1 = y1 + (oh - 0.5) * (y2 - y1) / oh - 0.5
    fx0 = x1 + 0.5 * (x2 - x1) / ow - 0.5
    fx1 = x1 + (ow - 0.5) * (x2 - x1) / ow - 0.5
    boxes = tf.stack(
        [fy0 / tf.maximum(h - 1, 1.0), fx0 / tf.maximum(w - 1, 1.0), fy1 / tf.maximum(h - 1, 1.0), fx1 / tf.maximum(w - 1, 1.0)],
        axis=-1,
    )
    valid = matched_index >= 0
    index = tf.range(batch)[:, None] * num_gt + tf.maximum(matched_index, 0)
    flat_masks = tf.reshape(gt_masks, tf.stack([batch * num_gt, height, width, 1]))
    # An image without GT has no mask to crop: an all-zero mask stands in.
    flat_masks = tf.concat([flat_masks, tf.zeros([1, height, width, 1])], 0)
    index = tf.where(valid, index, batch * num_gt)
    crops = tf.image.crop_and_resize(
        flat_masks, tf.reshape(boxes, [-1, 4]), tf.reshape(index, [-1]), (oh, ow), method="bilinear"
    )
    crops = tf.reshape(crops, tf.stack([batch, num_rois, oh, ow]))
    return tf.where(valid[..., None, None], tf.cast(crops >= 0.5, tf.float32), 0.0)


def keypoint_targets(gt_keypoints, matched_index, rois, heatmap_size=(28, 28)):
    """Mask R-CNN keypoint targets: the heatmap cell of each matched GT keypoint.

    A keypoint ``(x, y)`` inside RoI ``[y1, x1, y2, x2]`` falls in cell
    ``(floor((y - y1) / (y2 - y1) * h), floor((x - x1) / (x2 - x1) * w))``
    of an ``h × w`` heatmap laid over the RoI (a point on the far edge goes
    to the last cell); its target is that cell's flat index ``iy * w + ix``,
    trained with a softmax over the ``h·w`` cells (He et al.). Keypoints that
    are invisible (``v <= 0``), outside the RoI, or of unmatched RoIs get
    weight 0.

    Args:
        gt_keypoints: ``[B, M, K, 3]`` ``(x, y, v)`` absolute pixels.
        matched_index: int ``[B, R]`` index into ``M`` (``-1`` for none).
        rois: ``[B, R, 4]`` absolute ``yxyx``.
        heatmap_size: ``(h, w)``.

    Returns:
        ``(indices int32 [B, R, K], weights float32 [B, R, K])``.
    """
    gt_keypoints = tf.cast(gt_keypoints, tf.float32)
    matched_index = tf.cast(matched_index, tf.int32)
    rois = tf.cast(rois, tf.float32)
    h, w = heatmap_size
    kp = tf.gather(gt_keypoints, tf.maximum(matched_index, 0), batch_dims=1)  # [B, R, K, 3]
    x, y, v = kp[..., 0], kp[..., 1], kp[..., 2]
    y1, x1, y2, x2 = [rois[..., i : i + 1] for i in range(4)]
    fy = (y - y1) / tf.maximum(y2 - y1, 1e-6) * h
    fx = (x - x1) / tf.maximum(x2 - x1, 1e-6) * w
    inside = (y >= y1) & (y <= y2) & (x >= x1) & (x <= x2)
    iy = tf.clip_by_value(tf.cast(tf.floor(fy), tf.int32), 0, h - 1)
    ix = tf.clip_by_value(tf.cast(tf.floor(fx), tf.int32), 0, w - 1)
    valid = inside & (v > 0) & (matched_index >= 0)[..., None]
    return tf.where(valid, iy * w + ix, 0), tf.cast(valid, tf.float32)
