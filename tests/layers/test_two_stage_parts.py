"""The parts the two-stage detectors are composed of: pooler, proposal sources, RoI heads."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_det.layers import (
    BoxRoIHead,
    KeypointRoIHead,
    MaskRoIHead,
    MultiLevelRoIAlign,
    PrecomputedProposals,
    RegionProposalNetwork,
    RoIAlign,
    RoIHeads,
    RoIPooler,
    RoIPooling,
)
from keras_det.ops import boxes as box_ops
from keras_det.ops.anchors import grid_anchors, multilevel_anchors

ROIS = tf.constant([[[0.0, 0.0, 16.0, 16.0], [4.0, 8.0, 60.0, 40.0], [0.0, 0.0, 0.0, 0.0]]])


def _maps(seed=0):
    rng = np.random.default_rng(seed)
    return {f"P{k}": tf.constant(rng.normal(size=(1, 64 // 2**k, 64 // 2**k, 3)), tf.float32) for k in (2, 3, 4)}


def _round_trip(layer):
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(clone) is type(layer) and clone.get_config() == layer.get_config()
    return clone


def test_pooler_is_the_roi_layer_of_its_levels():
    maps = _maps()
    one = RoIPooler(4, ("P3",), "align")
    np.testing.assert_array_equal(one(maps, ROIS), RoIAlign(4, 1 / 8, 2, True)(maps["P3"], ROIS))
    pool = RoIPooler(4, ("P4",), "pool")
    np.testing.assert_array_equal(pool(maps, ROIS), RoIPooling(4, 1 / 16)(maps["P4"], ROIS))
    multi = RoIPooler((3, 5), ("P2", "P3", "P4"), canonical_level=3, canonical_scale=32)
    want = MultiLevelRoIAlign((3, 5), canonical_level=3, canonical_scale=32)(maps, ROIS)
    np.testing.assert_array_equal(multi(maps, ROIS), want)
    for layer in (one, pool, multi):
        np.testing.assert_array_equal(_round_trip(layer)(maps, ROIS), layer(maps, ROIS))
    with pytest.raises(ValueError, match="'align' or 'pool'"):
        RoIPooler(7, ("C4",), "max")
    with pytest.raises(ValueError, match="need 'align'"):
        RoIPooler(7, ("P3", "P4"), "pool")
    with pytest.raises(ValueError, match="level number"):
        RoIPooler(7, ("top",))


def test_multilevel_anchors_on_feature_shapes_equal_grid_anchors_per_level():
    got, counts = multilevel_anchors(strides=(8, 16), sizes=((16, 32), (64,)), aspect_ratios=(0.5, 1.0),
                                     feature_shapes=[(3, 4), (2, 2)])
    want = tf.concat([grid_anchors((3, 4), 8, (16, 32), (0.5, 1.0)), grid_anchors((2, 2), 16, (64,), (0.5, 1.0))], 0)
    np.testing.assert_array_equal(got, want)
    assert counts == [3 * 4 * 4, 2 * 2 * 2]
    with pytest.raises(ValueError, match="feature_shapes"):
        multilevel_anchors(strides=(8, 16), feature_shapes=[(3, 4)])


def test_rpn_levels_share_one_head_and_one_coder():
    maps = {"P3": tf.zeros([2, 8, 8, 4]), "P4": tf.zeros([2, 4, 4, 4])}
    rpn = RegionProposalNetwork(("P3", "P4"), (16, 32), (1.0, 2.0), filters=8, pre_nms_topk_test=50, post_nms_topk_test=10)
    assert rpn.targets.box_coder is rpn.proposal_generator.box_coder
    assert rpn.box_coder.weights == box_ops.UNIT_BOX_WEIGHTS
    want = tf.concat([grid_anchors((8, 8), 8, (16,), (1.0, 2.0)), grid_anchors((4, 4), 16, (32,), (1.0, 2.0))], 0)
    np.testing.assert_array_equal(rpn.anchors(maps), want)
    objectness, deltas, anchors = rpn.head_outputs(maps)
    assert objectness.shape == (2, 160) and deltas.shape == (2, 160, 4) and anchors.shape == (160, 4)
    proposals, valid = rpn(maps, tf.constant([64, 64]))
    assert proposals.shape == (2, 10, 4) and valid.dtype == tf.bool
    gt = tf.constant([[[0.0, 0.0, 16.0, 16.0]], [[8.0, 8.0, 40.0, 40.0]]])
    _, _, losses = rpn.compute_losses(maps, tf.constant([64, 64]), gt, tf.constant([[0], [1]]))
    assert set(losses) == {"rpn_cls_loss", "rpn_box_loss"} and all(np.isfinite(float(v)) for v in losses.values())
    assert _round_trip(rpn).levels == ("P3", "P4")
    with pytest.raises(ValueError, match="one size per level"):
        RegionProposalNetwork(("P3", "P4"), (16, 32, 64))


def test_precomputed_proposals_convert_and_mark_padding():
    source = PrecomputedProposals("rel_xyxy", owner="FastRCNN")
    boxes, valid = source({}, tf.constant([100, 200]), tf.constant([[[0.1, 0.2, 0.5, 0.6], [0.0, 0.0, 0.0, 0.0]]]))
    np.testing.assert_allclose(boxes, [[[20, 20, 60, 100], [0, 0, 0, 0]]], atol=1e-5)
    np.testing.assert_array_equal(valid, [[True, False]])
    with pytest.raises(ValueError, match="FastRCNN needs `proposals`"):
        source({}, tf.constant([10, 10]))
    _round_trip(source)


def test_roi_heads_return_detections_losses_and_intermediates():
    maps = {"C3": tf.random.stateless_normal([2, 8, 8, 4], seed=(1, 2))}
    box = BoxRoIHead(2, ("C3",), fc_dims=(8, 8), batch_size_per_image=8, max_detections=5, score_threshold=0.0)
    heads = RoIHeads(box, MaskRoIHead(2, ("C3",), roi_size=4, conv_dims=4, num_convs=1),
                     KeypointRoIHead(3, ("C3",), roi_size=4, conv_dims=4, num_convs=1))
    # One coder object per head: the targets encode with what the decoder decodes with.
    assert box.targets.box_coder is box.decoder.box_coder and box.box_coder.weights == box_ops.RCNN_BOX_WEIGHTS
    proposals = tf.constant([[[0, 0, 32, 32], [8, 8, 40, 60], [0, 0, 0, 0]]] * 2, tf.float32)
    valid = box_ops.area(proposals) > 0
    out = heads(maps, proposals, valid, tf.constant([64, 64]))
    assert out["boxes"].shape == (2, 5, 4) and out["masks"].shape == (2, 5, 8, 8)
    assert out["keypoints"].shape == (2, 5, 3, 3)
    gt = tf.constant([[[0, 0, 30, 30]], [[10, 10, 40, 60]]], tf.float32)
    masks = tf.ones([2, 1, 64, 64], tf.uint8)
    keypoints = tf.constant([[[[5.0, 5.0, 1.0]] * 3], [[[20.0, 20.0, 1.0]] * 3]])
    losses, inter = heads.compute_losses(maps, proposals, valid, gt, tf.constant([[0], [1]]), False, masks, keypoints)
    assert set(losses) == {"roi_cls_loss", "roi_box_loss", "mask_loss", "keypoint_loss"}
    # S = min(8, 3 proposals + 1 GT) sampled RoIs; P = int(8 * 0.25) positive slots.
    assert inter["rois"].shape == (2, 4, 4) and inter["positive_rois"].shape == (2, 2, 4)
    assert float(tf.reduce_sum(inter["positive_targets"]["box_weights"])) == float(tf.reduce_sum(inter["targets"]["box_weights"]))
    with pytest.raises(ValueError, match="needs `masks`"):
        heads.compute_losses(maps, proposals, valid, gt, tf.constant([[0], [1]]))
    clone = _round_trip(heads)
    assert isinstance(clone.mask, MaskRoIHead) and clone.keypoint.num_outputs == 3
    for part in (box, heads.mask, heads.keypoint):
        _round_trip(part)


def test_used_slots_covers_every_valid_entry():
    from keras_det.ops.instances import used_slots

    valid = tf.constant([[True, True, False, False, False], [True, False, False, True, False]])
    assert int(used_slots(valid)) == 4  # image 1's last valid slot is index 3
    assert int(used_slots(tf.constant([[True, True, True]]))) == 3
    assert int(used_slots(tf.zeros([2, 6], tf.bool))) == 1  # at least one slot


@pytest.mark.parametrize("threshold", [0.05, 0.0])
def test_box_head_on_the_used_slots_equals_the_padded_head(threshold):
    """Skipping the padded proposal slots after the last valid one (inference) changes no detection:
    padding at the end, in the middle (user proposals), and an image without any valid proposal."""
    rng = np.random.default_rng(3)
    maps = {"C3": tf.constant(rng.normal(size=(3, 8, 8, 4)), tf.float32)}
    box = BoxRoIHead(3, ("C3",), fc_dims=(8, 8), max_detections=6, score_threshold=threshold)
    corners = rng.uniform(0, 40, (3, 10, 2))
    proposals = np.concatenate([corners, corners + rng.uniform(4, 24, (3, 10, 2))], -1).astype(np.float32)
    valid = np.zeros((3, 10), bool)
    valid[0, :4] = True  # padding at the end
    valid[1, [0, 2, 6]] = True  # padding between: the used slots are 0..6
    proposals[~valid] = 0.0
    proposals, valid = tf.constant(proposals), tf.constant(valid)
    shape = tf.constant([64, 64])
    box.skip_padding = False
    full = box(maps, proposals, valid, shape)
    box.skip_padding = True
    used = box(maps, proposals, valid, shape)
    assert full["num_detections"].numpy().tolist() == used["num_detections"].numpy().tolist()
    assert full["num_detections"].numpy()[0] > 0 and full["num_detections"].numpy()[2] == 0
    for key in full:
        np.testing.assert_allclose(used[key], full[key], atol=1e-6, err_msg=key)
    # The traced graph keeps the static K detection slots.
    traced = tf.function(lambda p, v: box(maps, p, v, shape)).get_concrete_function(
        tf.TensorSpec([3, None, 4], tf.float32), tf.TensorSpec([3, None], tf.bool))
    assert traced.structured_outputs["boxes"].shape.as_list() == [3, 6, 4]
