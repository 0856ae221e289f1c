"""Anchor ↔ ground-truth matching and balanced sampling.

``Matcher`` follows Detectron2's ``Matcher`` (and torchvision's): every
prediction (anchor, default box, proposal) is assigned the ground truth with
which it has the highest similarity, and a label from thresholds on that
similarity. ``BalancedSampler`` draws a fixed-size minibatch with a bounded
fraction of positives (Faster R-CNN: 256 anchors per image, up to 50%
positive, for the RPN; 512 RoIs, up to 25% positive, for the RoI head).

Shapes are batched: a similarity matrix is ``[B, N, M]`` — N predictions
(rows) by M ground-truth boxes (columns) — which is what
``keras_det.ops.boxes.iou(anchors, gt_boxes)`` returns. Note this is the
transpose of Detectron2's ``[M, N]`` layout.
"""

import tensorflow as tf

POSITIVE = 1
NEGATIVE = 0
IGNORE = -1


class Matcher:
    """Assigns each prediction to a ground-truth box.

    With ``thresholds=[t_1, ..., t_k]`` and ``labels=[l_0, ..., l_k]`` a
    prediction whose best similarity ``s`` satisfies ``t_i <= s < t_{i+1}``
    (with ``t_0 = -inf`` and ``t_{k+1} = +inf``) gets label ``l_i``. Labels are
    ``1`` (positive), ``0`` (negative) and ``-1`` (ignored). The Faster R-CNN
    RPN uses ``thresholds=[0.3, 0.7], labels=[0, -1, 1]``: below 0.3 negative,
    0.7 and above positive, the band between ignored.

    ``allow_low_quality_matches=True`` also makes positive, for every ground
    truth, the predictions that reach that ground truth's highest similarity
    (all of them on ties), so a box that no prediction overlaps by 0.7 still
    gets one. As in Detectron2, this changes only the label, not the matched
    index (which stays the row's argmax); unlike Detectron2, a ground truth
    whose best similarity is 0 forces nothing (otherwise every non-overlapping
    prediction would become positive).

    Ground truth marked invalid (padding) never matches. A row with no valid
    ground truth gets label ``labels[0]`` and matched index 0.

    Args:
        thresholds: increasing similarity thresholds.
        labels: one more entry than ``thresholds``, each in {-1, 0, 1}.
        allow_low_quality_matches: see above.
    """

    def __init__(self, thresholds=(0.3, 0.7), labels=(0, -1, 1), allow_low_quality_matches=False):
        thresholds = [float(t) for t in thresholds]
        labels = [int(v) for v in labels]
        if any(b < a for a, b in zip(thresholds, thresholds[1:])):
            raise ValueError(f"`thresholds` must be increasing, got {thresholds}.")
        if len(labels) != len(thresholds) + 1:
            raise ValueError(
                f"`labels` needs len(thresholds) + 1 = {len(thresholds) + 1} entries, got {labels}."
            )
        if any(v not in (IGNORE, NEGATIVE, POSITIVE) for v in labels):
            raise ValueError(f"`labels` entries must be -1, 0 or 1, got {labels}.")
        self.thresholds = thresholds
        self.labels = labels
        self.allow_low_quality_matches = bool(allow_low_quality_matches)

    def __call__(self, similarity, gt_valid=None):
        """Matches predictions to ground truth.

        Args:
            similarity: float ``[B, N, M]`` (or ``[N, M]``), e.g. IoU.
            gt_valid: optional bool ``[B, M]`` (or ``[M]``); False marks padding.

        Returns:
            ``(matches, match_labels)``: int32 ``[B, N]`` index of the matched
            ground truth (0 when there is none), and int32 ``[B, N]`` labels.
        """
        similarity = tf.convert_to_tensor(similarity, tf.float32)
        if gt_valid is not None:
            similarity = tf.where(tf.cast(gt_valid, tf.bool)[..., None, :], similarity, -1.0)
        # A sentinel column of -1 makes an image without (valid) ground truth
        # well defined: everything matches the sentinel with similarity -1.
        sentinel = tf.fill(tf.concat([tf.shape(similarity)[:-1], [1]], 0), -1.0)
        padded = tf.concat([similarity, sentinel], axis=-1)
        num_gt = tf.shape(similarity)[-1]
        matches = tf.cast(tf.argmax(padded, axis=-1), tf.int32)
        best = tf.reduce_max(padded, axis=-1)
        matches = tf.where(matches >= num_gt, 0, matches)

        match_labels = tf.fill(tf.shape(best), tf.constant(self.labels[0], tf.int32))
        for threshold, label in zip(self.thresholds, self.labels[1:]):
            match_labels = tf.where(best >= threshold, label, match_labels)

        if self.allow_low_quality_matches:
            best_per_gt = tf.reduce_max(similarity, axis=-2, keepdims=True)  # [B, 1, M]
            is_best = (similarity == best_per_gt) & (best_per_gt > 0.0)
            forced = tf.reduce_any(is_best, axis=-1)
            match_labels = tf.where(forced, POSITIVE, match_labels)
        return matches, match_labels

    def get_config(self):
        return {
            "thresholds": self.thresholds,
            "labels": self.labels,
            "allow_low_quality_matches": self.allow_low_quality_matches,
        }


def _rank_among(mask, keys):
    """Rank (0-based) of each True entry of ``mask`` by ascending ``keys``, per row."""
    keys = tf.where(mask, keys, 2.0)  # keys are in [0, 1): masked-out entries sort last
    order = tf.argsort(keys, axis=-1, stable=True)
    return tf.argsort(order, axis=-1, stable=True)


class BalancedSampler:
    """Samples a fixed number of predictions with at most a fraction positive.

    Per image: ``P = min(#positives, int(num_samples * positive_fraction))``
    positives and ``min(#negatives, num_samples - P)`` negatives, uniformly at
    random without replacement (the rule of Faster R-CNN, torchvision's
    ``BalancedPositiveNegativeSampler`` and Detectron2's ``subsample_labels``).
    When positives are scarce the batch is topped up with negatives.

    Args:
        num_samples: samples per image (256 for the RPN, 512 for the RoI head).
        positive_fraction: upper bound on the positive share (0.5 / 0.25).
    """

    def __init__(self, num_samples=256, positive_fraction=0.5):
        if num_samples < 1 or not 0.0 <= positive_fraction <= 1.0:
            raise ValueError(
                "`num_samples` must be >= 1 and `positive_fraction` in [0, 1], got "
                f"{num_samples} and {positive_fraction}."
            )
        self.num_samples = int(num_samples)
        self.positive_fraction = float(positive_fraction)

    def __call__(self, match_labels, seed=None):
        """Draws the sample.

        Args:
            match_labels: int ``[B, N]`` (or ``[N]``) labels from ``Matcher``
                (1 positive, 0 negative, -1 ignored; ignored are never drawn).
            seed: optional int for a reproducible draw (stateless RNG);
                ``None`` uses TensorFlow's global generator.

        Returns:
            ``(positive, negative)``: bool tensors shaped like ``match_labels``
            marking the sampled positives and negatives.
        """
        match_labels = tf.convert_to_tensor(match_labels, tf.int32)
        shape = tf.shape(match_labels)
        if seed is None:
            keys = tf.random.uniform(shape)
        else:
            keys = tf.random.stateless_uniform(shape, seed=[int(seed), 0])
        is_pos = match_labels == POSITIVE
        is_neg = match_labels == NEGATIVE
        num_pos = tf.minimum(
            tf.reduce_sum(tf.cast(is_pos, tf.int32), axis=-1, keepdims=True),
            int(self.num_samples * self.positive_fraction),
        )
        num_neg = tf.minimum(
            tf.reduce_sum(tf.cast(is_neg, tf.int32), axis=-1, keepdims=True),
            self.num_samples - num_pos,
        )
        positive = is_pos & (_rank_among(is_pos, keys) < num_pos)
        negative = is_neg & (_rank_among(is_neg, keys) < num_neg)
        return positive, negative

    def get_config(self):
        return {"num_samples": self.num_samples, "positive_fraction": self.positive_fraction}
