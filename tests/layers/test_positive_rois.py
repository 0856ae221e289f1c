"""The mask / keypoint heads train on the positive RoIs only: the same loss and gradients as on all sampled RoIs."""

import numpy as np
import pytest
import tensorflow as tf

from keras_det import losses as loss_ops
from keras_det.layers.roi_heads import KeypointRoIHead, MaskRoIHead, _chosen_class, positive_rois
from keras_det.ops.targets import keypoint_targets, mask_targets


def _case(positives_per_image, r=12, m=3, size=32, seed=0):
    rng = np.random.default_rng(seed)
    b = len(positives_per_image)
    yx = rng.uniform(0, 20, (b, r, 2))
    rois = np.concatenate([yx, yx + rng.uniform(4, 12, (b, r, 2))], -1).astype(np.float32)
    weights = np.zeros((b, r), np.float32)
    for i, p in enumerate(positives_per_image):
        weights[i, rng.choice(r, p, replace=False)] = 1.0
    t = {"box_weights": tf.constant(weights),
         "matched_index": tf.constant(rng.integers(0, m, (b, r)), tf.int32),
         "labels": tf.constant(np.where(weights > 0, rng.integers(1, 3, (b, r)), 0), tf.int32)}
    features = {"C3": tf.constant(rng.normal(size=(b, size // 8, size // 8, 6)), tf.float32)}
    masks = tf.constant(rng.uniform(size=(b, m, size, size)) > 0.5, tf.float32)
    keypoints = np.concatenate([rng.uniform(0, size, (b, m, 3, 2)), rng.integers(0, 3, (b, m, 3, 1))], -1)
    return features, tf.constant(rois), t, masks, tf.constant(keypoints, tf.float32)


def _mask_loss_on_all_rois(head, features, rois, t, gt_masks):  # the former formulation
    logits = head.logits(features, rois)
    targets = mask_targets(gt_masks, t["matched_index"], rois, head.output_size)
    return loss_ops.mask_loss(_chosen_class(logits, tf.maximum(t["labels"] - 1, 0)), targets, t["box_weights"])


def _keypoint_loss_on_all_rois(head, features, rois, t, gt_keypoints):
    logits = head.logits(features, rois)
    matched = tf.where(t["box_weights"] > 0, t["matched_index"], -1)
    index, weight = keypoint_targets(gt_keypoints, matched, rois, head.output_size)
    return loss_ops.keypoint_loss(logits, index, weight)


def test_positive_rois_keeps_every_positive_in_order():
    # No positive anywhere: one zero-weight RoI per image, never an empty batch (TF's CPU Conv2D
    # mis-shapes one on AVX-512 machines; the heads' losses are then 0).
    _, rois, t, _, _ = _case([0, 0, 0])
    kept, kt = positive_rois(rois, t)
    assert kept.shape == (3, 1, 4) and not np.any(kt["box_weights"].numpy())
    _, rois, t, _, _ = _case([3, 1, 0])
    kept, kt = positive_rois(rois, t)
    assert kept.shape == (3, 3, 4)
    for i in range(3):
        w = t["box_weights"][i].numpy()
        idx = np.flatnonzero(w > 0)
        np.testing.assert_array_equal(kept[i, : len(idx)], rois[i].numpy()[idx])
        np.testing.assert_array_equal(kt["matched_index"][i, : len(idx)], t["matched_index"][i].numpy()[idx])
        assert kt["box_weights"][i].numpy().sum() == len(idx)


@pytest.mark.parametrize("positives", [[3, 1, 0], [12, 5, 2], [0, 0, 0]])
def test_mask_and_keypoint_losses_and_gradients_equal_the_all_rois_formulation(positives):
    features, rois, t, masks, keypoints = _case(positives)
    for head, reference, gt in ((MaskRoIHead(2, ("C3",), roi_size=4, conv_dims=4, num_convs=2), _mask_loss_on_all_rois, masks),
                                (KeypointRoIHead(3, ("C3",), roi_size=4, conv_dims=4, num_convs=2), _keypoint_loss_on_all_rois, keypoints)):
        head.logits(features, rois)  # build
        with tf.GradientTape(persistent=True) as tape:
            new = head.loss(features, rois, t, gt)
            old = reference(head, features, rois, t, gt)
        np.testing.assert_allclose(new.numpy(), old.numpy(), rtol=1e-6, atol=1e-7)
        for a, b in zip(tape.gradient(new, head.trainable_weights), tape.gradient(old, head.trainable_weights)):
            if a is None or b is None:
                assert a is None and b is None or sum(positives) == 0
                continue
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-7)
        if sum(positives):
            assert new.numpy() > 0
