"""R-CNN (Girshick et al., 2014): warp every proposal, run the CNN on each.

    image + proposals ─ WarpRegions (context 16 px, crop_and_resize → S×S) ─ backbone ─ global pool ─ f
        f ─ finetune_classifier  (softmax over K+1; stage 1: fine-tuning)
        f ─ svm                  (K linear SVMs, squared hinge + L2; stage 2)
        f ─ bbox_regressor       (K×4 ridge regression of deltas; stage 3)
    scores (sigmoid of the SVM margins) + deltas ─ DetectionDecoder (per-class NMS)

The seed's multi-stage recipe, kept inside one Keras model so the whole
detector is a TensorFlow graph (it exports and serves like the others):

1. **Fine-tuning** (``stage="finetune"``): windows (proposals + GT boxes)
   with IoU ≥ 0.5 to a GT box are positives of its class, the rest
   background; each image contributes ``finetune_rois_per_image`` windows
   with at most ``finetune_positive_fraction`` positives (the paper's
   mini-batch of 128 = 32 positives + 96 background, here per image).
   Softmax cross-entropy trains the backbone and ``finetune_classifier``.
2. **SVMs** (``stage="svm"``): on *fixed* features (no gradient to the
   backbone), one linear SVM per class (a ``Dense(K)`` layer) with the
   squared hinge loss and an L2 penalty ``svm_l2 * ||W||²``. Positives are
   the GT boxes only; negatives are proposals with IoU < ``svm_negative_iou``
   (0.3) with every GT box (and the GT boxes of the other classes). Hard
   negative mining: ``svm_negative_pool`` random negatives per image are
   scored and the ``svm_negative_ratio`` × #positives with the largest
   hinge loss are kept (`keras_det.losses.svm_squared_hinge_loss`) — the
   paper's mining, restricted to the pool sampled at each step.
3. **Box regression** (also ``stage="svm"``, on the same fixed features):
   per-class linear regression of ``BoxCoder`` deltas (weights 1, the
   paper's parameterisation) from the proposal to its GT for proposals with
   IoU ≥ ``bbox_iou`` (0.6); squared error + ridge ``bbox_l2 * ||W||²``.

``stage="all"`` computes the three losses at once (the SVM and regression
losses still see fixed features, so only the fine-tuning loss moves the
backbone). Typical use: ``fit`` with ``stage="finetune"``, then
``model.stage = "svm"``, ``compile`` again and ``fit`` again.

Inference warps all ``P`` proposals of every image (the valid ones: padded
slots are skipped, whole chunks at a time) and runs the backbone on them in
chunks of ``inference_chunk`` windows (``tf.map_fn``), which is what
makes R-CNN slow (the seed's 47 s/image with VGG16 against Fast R-CNN's
0.32 s; see ``benchmarks/proposals_scaling.py`` for this CPU). Scores are
``sigmoid(svm margin)`` (``score_source="svm"``, so the default
``score_threshold=0.5`` keeps positive margins) or the fine-tuned softmax
(``score_source="softmax"``).

Features for SVM training can be precomputed once (the paper caches them on
disk): `RCNN.window_features(images, boxes)` gives ``[B, R, D]`` pooled
features of given windows; docs/proposals.md shows how to run it in the
Beam pipeline.
"""

import keras
import tensorflow as tf

from keras_det import losses as loss_ops
from keras_det.backbones import build_backbone
from keras_det.layers.decoder import DetectionDecoder
from keras_det.layers.rpn import PrecomputedProposals
from keras_det.layers.warp import WarpRegions
from keras_det.models.base import Detector
from keras_det.models.two_stage import ProposalInputs, split_inputs
from keras_det.ops import boxes as box_ops
from keras_det.ops.boxes import BoxCoder, context_boxes  # noqa: F401  (context_boxes: old import path)
from keras_det.ops.matching import BalancedSampler, Matcher
from keras_det.ops.targets import TargetEncoder, gather_class_deltas, select_sampled

STAGES = ("finetune", "svm", "all")


@keras.saving.register_keras_serializable(package="keras_det")
class RCNN(ProposalInputs, Detector):
    """R-CNN detector on external proposals (see the module docstring).

    Args:
        num_classes: object classes (0-based labels; background is added
            for fine-tuning).
        backbone: name from ``keras_det.backbones.BACKBONES`` or a Keras model.
        backbone_weights: ``"imagenet"``, ``None`` or a local weights file.
        bounding_box_format: format of boxes and proposals given to the model
            and of the boxes it returns.
        warp_size: side of the warped windows (224).
        context_padding: context pixels in the warped window (16).
        feature_tap: backbone stage to global-pool (``"C5"``).
        stage: ``"finetune"``, ``"svm"`` or ``"all"`` — which losses train.
        finetune_rois_per_image, finetune_positive_fraction: fine-tuning
            windows per image (128) and their positive share (0.25).
        svm_negative_iou: negatives have IoU below this with every GT (0.3).
        svm_negative_pool: random negatives scored per image for mining (64).
        svm_negative_ratio: hard negatives kept per positive (3).
        svm_l2: L2 penalty on the SVM weights.
        bbox_iou: proposals regressed have IoU ≥ this (0.6).
        bbox_rois_per_image: such proposals used per image (16).
        bbox_l2: ridge penalty on the regressor weights.
        score_source: ``"svm"`` (sigmoid of margins) or ``"softmax"``.
        score_threshold, nms_iou_threshold, max_detections: decoding
            (R-CNN's NMS threshold is 0.3).
        inference_chunk: windows per backbone call at inference (bounds memory).

    Call: ``{"images": [B, H, W, 3] float 0..255, "proposals": [B, P, 4]}``
    (or ``(images, proposals)``) → prediction dict.
    """

    loss_keys = ("finetune_loss", "svm_loss", "bbox_loss")

    def __init__(
        self,
        num_classes,
        backbone="mobilenet_v2",
        backbone_weights=None,
        bounding_box_format="xyxy",
        warp_size=224,
        context_padding=16,
        feature_tap="C5",
        stage="all",
        finetune_rois_per_image=128,
        finetune_positive_fraction=0.25,
        svm_negative_iou=0.3,
        svm_negative_pool=64,
        svm_negative_ratio=3,
        svm_l2=1e-4,
        bbox_iou=0.6,
        bbox_rois_per_image=16,
        bbox_l2=1e-3,
        score_source="svm",
        score_threshold=0.5,
        nms_iou_threshold=0.3,
        max_detections=100,
        inference_chunk=64,
        **kwargs,
    ):
        super().__init__(bounding_box_format=bounding_box_format, loss_names=self.loss_keys, **kwargs)
        if score_source not in ("svm", "softmax"):
            raise ValueError(f"`score_source` must be 'svm' or 'softmax', got {score_source!r}.")
        self.num_classes = int(num_classes)
        self.backbone_name = backbone if isinstance(backbone, str) else None
        self.stage = stage
        self.feature_tap = feature_tap
        self.score_source = score_source
        self.inference_chunk = int(inference_chunk)
        self.svm_negative_ratio = int(svm_negative_ratio)
        self.svm_l2 = float(svm_l2)
        self.bbox_l2 = float(bbox_l2)
        self.finetune_rois_per_image = int(finetune_rois_per_image)
        self.bbox_rois_per_image = int(bbox_rois_per_image)
        self.svm_negative_pool = int(svm_negative_pool)
        self.proposal_source = PrecomputedProposals(bounding_box_format, owner="RCNN", name="proposals")
        self.warp = WarpRegions(warp_size, context_padding, name="warp")
        self.backbone = build_backbone(backbone, backbone_weights, (int(warp_size), int(warp_size), 3), taps=(feature_tap,))
        self.pool = keras.layers.GlobalAveragePooling2D(name="pool")
        self.feature_dim = int(self.backbone.output[feature_tap].shape[-1])
        self.finetune_classifier = keras.layers.Dense(self.num_classes + 1, name="finetune_classifier")
        self.svm = keras.layers.Dense(self.num_classes, name="svm")
        self.bbox_regressor = keras.layers.Dense(
            self.num_classes * 4, kernel_initializer=keras.initializers.Zeros(), name="bbox_regressor"
        )
        # One coder for the regression targets and the decoder (the paper's weights 1).
        self.box_coder = BoxCoder(box_ops.UNIT_BOX_WEIGHTS)
        self.decoder = DetectionDecoder(
            score_threshold=score_threshold, iou_threshold=nms_iou_threshold, max_detections=max_detections,
            bounding_box_format=bounding_box_format, box_coder=self.box_coder, name="decoder",
        )
        self.finetune_targets = TargetEncoder(
            Matcher((0.5,), (0, 1)), BalancedSampler(self.finetune_rois_per_image, finetune_positive_fraction)
        )
        # Negatives for the SVMs: IoU < svm_negative_iou; the band above is ignored.
        self.svm_targets = TargetEncoder(
            Matcher((float(svm_negative_iou),), (0, -1)), BalancedSampler(int(svm_negative_pool), 0.0)
        )
        self.bbox_targets = TargetEncoder(Matcher((float(bbox_iou),), (0, 1)), None, self.box_coder)

    @property
    def stage(self):
        """Which losses train: ``"finetune"``, ``"svm"`` or ``"all"``.

        Call ``compile()`` again after changing it: ``fit`` reuses the
        traced train step of the last ``compile``.
        """
        return self._stage

    @stage.setter
    def stage(self, value):
        if value not in STAGES:
            raise ValueError(f"`stage` must be one of {STAGES}, got {value!r}.")
        self._stage = value

    def get_config(self):
        # The stage is state (set between fits), read here rather than the constructor's `stage`.
        return {**super().get_config(), "stage": self.stage}

    def build(self, input_shape=None):
        # All three heads exist from the start, whichever stage or score
        # source is used, so that saved weights always have the same layout.
        for layer in (self.finetune_classifier, self.svm, self.bbox_regressor):
            if not layer.built:
                layer.build((None, self.feature_dim))
        self.built = True

    # -- features -------------------------------------------------------------
    def _pooled(self, windows, training):
        return self.pool(self.backbone(windows, training=training)[self.feature_tap])

    def window_features(self, images, boxes, training=False):
        """Pooled CNN features of given windows.

        Args:
            images: float ``[B, H, W, 3]`` 0..255.
            boxes: ``[B, R, 4]`` absolute ``yxyx`` windows.
            training: backbone mode.

        Returns:
            float32 ``[B, R, D]``.
        """
        images = tf.cast(images, tf.float32)
        batch, num = tf.shape(boxes)[0], tf.shape(boxes)[1]
        flat = tf.reshape(tf.cast(boxes, tf.float32), [-1, 4])
        index = tf.repeat(tf.range(batch), num)
        feats = self._pooled(self.warp(images, flat, index), training)
        return tf.reshape(feats, [batch, num, self.feature_dim])

    def _chunked_features(self, images, boxes, valid):
        """`window_features` at inference, ``inference_chunk`` windows per backbone call.

        Only the ``valid [B, R]`` windows are warped and run, in
        ``ceil(valid / inference_chunk)`` chunks (the last one padded to the
        chunk size: `tf.map_fn` needs a static shape); the others get zero
        features.
        """
        images = tf.cast(images, tf.float32)
        batch, num = tf.shape(boxes)[0], tf.shape(boxes)[1]
        keep = tf.cast(tf.where(tf.reshape(valid, [-1])), tf.int32)  # [N, 1] positions of the valid windows
        all_flat = tf.reshape(tf.cast(boxes, tf.float32), [-1, 4])
        flat = tf.gather_nd(all_flat, keep)
        index = tf.gather_nd(tf.repeat(tf.range(batch), num), keep)
        total = tf.shape(flat)[0]
        k = self.inference_chunk
        chunks = (total + k - 1) // k
        pad = chunks * k - total
        flat = tf.reshape(tf.pad(flat, [[0, pad], [0, 0]]), [chunks, k, 4])
        index = tf.reshape(tf.pad(index, [[0, pad]]), [chunks, k])

        def one(args):
            b, i = args
            return self._pooled(self.warp(images, b, i), False)

        feats = tf.map_fn(one, (flat, index), fn_output_signature=tf.TensorSpec([k, self.feature_dim], tf.float32))
        feats = tf.reshape(feats, [chunks * k, self.feature_dim])[:total]
        feats = tf.scatter_nd(keep, feats, tf.stack([tf.shape(all_flat)[0], self.feature_dim]))
        return tf.reshape(feats, [batch, num, self.feature_dim])

    # -- inference -------------------------------------------------------------
    def call(self, inputs, training=False):
        images, proposals = split_inputs(inputs)
        images = tf.cast(images, tf.float32)
        proposals, valid = self.proposal_source(images, tf.shape(images)[1:3], proposals)
        feats = self._chunked_features(images, proposals, valid)
        if self.score_source == "svm":
            scores = tf.sigmoid(self.svm(feats))
        else:
            scores = tf.nn.softmax(self.finetune_classifier(feats), axis=-1)[..., 1:]
        scores = tf.where(valid[..., None], scores, 0.0)
        shape = tf.concat([tf.shape(feats)[:2], [self.num_classes, 4]], 0)
        deltas = tf.reshape(self.bbox_regressor(feats), shape)
        return self.decoder(proposals, deltas, scores, tf.shape(images)[1:3])

    # -- training -------------------------------------------------------------
    def compute_detection_losses(self, images, gt_boxes, gt_labels, training=True, proposals=None, **extras):
        proposals, valid = self.proposal_source(images, tf.shape(images)[1:3], proposals)
        gt_valid = gt_labels >= 0
        windows, parts = [], []
        if self.stage in ("finetune", "all"):
            rois = tf.concat([proposals, gt_boxes], axis=1)
            rois_valid = tf.concat([valid, gt_valid], axis=1)
            t = self.finetune_targets(rois, gt_boxes, gt_labels, anchor_valid=rois_valid)
            idx, ft = select_sampled(t, self.finetune_rois_per_image)
            windows.append(tf.gather(rois, idx, batch_dims=1))
            parts.append("finetune")
        if self.stage in ("svm", "all"):
            t = self.svm_targets(proposals, gt_boxes, gt_labels, anchor_valid=valid)
            idx, neg = select_sampled(t, self.svm_negative_pool)
            windows += [gt_boxes, tf.gather(proposals, idx, batch_dims=1)]
            t = self.bbox_targets(proposals, gt_boxes, gt_labels, anchor_valid=valid)
            bidx, bb = select_sampled(t, self.bbox_rois_per_image, by="box_weights")
            windows.append(tf.gather(proposals, bidx, batch_dims=1))
            parts += ["svm_pos", "svm_neg", "bbox"]
        sizes = [tf.shape(w)[1] for w in windows]
        all_windows = tf.concat(windows, axis=1)
        # The backbone trains only through the fine-tuning loss.
        backbone_training = training and self.stage != "svm"
        feats = dict(zip(parts, tf.split(self.window_features(images, all_windows, backbone_training), sizes, axis=1)))
        losses = {}
        if "finetune" in feats:
            logits = self.finetune_classifier(feats["finetune"])
            losses["finetune_loss"] = loss_ops.softmax_cross_entropy(logits, ft["labels"], ft["class_weights"])
        if "svm_pos" in feats:
            losses["svm_loss"] = self._svm_loss(
                tf.stop_gradient(feats["svm_pos"]), gt_labels, tf.stop_gradient(feats["svm_neg"]), neg["class_weights"] > 0
            )
            f = tf.stop_gradient(feats["bbox"])
            shape = tf.concat([tf.shape(f)[:2], [self.num_classes, 4]], 0)
            deltas = gather_class_deltas(tf.reshape(self.bbox_regressor(f), shape), bb["labels"])
            n_pos = tf.reduce_sum(bb["box_weights"])
            losses["bbox_loss"] = loss_ops.box_regression_loss(
                deltas, bb["box_targets"], bb["box_weights"], n_pos, kind="l2"
            ) + self.bbox_l2 * tf.reduce_sum(tf.square(self.bbox_regressor.kernel))
        return losses

    def _svm_loss(self, pos_feats, pos_labels, neg_feats, neg_valid):
        """``keras_det.losses.svm_squared_hinge_loss`` of the SVMs on positive / background window features."""
        return loss_ops.svm_squared_hinge_loss(
            self.svm(pos_feats), pos_labels, self.svm(neg_feats), neg_valid,
            negative_ratio=self.svm_negative_ratio, kernel=self.svm.kernel, l2=self.svm_l2,
        )

