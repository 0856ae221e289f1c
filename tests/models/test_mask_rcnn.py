import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_det.models.mask_rcnn import MaskRCNN
from keras_det.ops.instances import decode_keypoints, paste_masks
from keras_det.ops.targets import mask_targets

from keras_det import presets

MASK = presets.arguments("mask_rcnn_test")  # the smallest Mask R-CNN that exercises every path
from .synthetic import rectangles


def _with_masks(batch):
    n, m = batch["bounding_boxes"]["labels"].shape
    size = batch["images"].shape[1]
    masks = np.zeros((n, m, size, size), np.uint8)
    for i in range(n):
        for j in range(m):
            if batch["bounding_boxes"]["labels"][i, j] >= 0:
                x1, y1, x2, y2 = batch["bounding_boxes"]["boxes"][i, j].astype(int)
                masks[i, j, y1:y2, x1:x2] = 1
    return {**batch, "masks": masks}


def test_mask_targets_hand_made():
    masks = np.zeros((1, 2, 8, 8), np.float32)
    masks[0, 0, 2:6, 2:6] = 1  # a 4x4 square
    masks[0, 1, :, :4] = 1  # left half
    rois = np.array([[[2, 2, 6, 6], [0, 0, 8, 8], [0, 0, 8, 8]]], np.float32)
    t = mask_targets(masks, np.array([[0, 1, -1]]), rois, (4, 4)).numpy()
    np.testing.assert_array_equal(t[0, 0], np.ones((4, 4)))  # the RoI is exactly the square
    np.testing.assert_array_equal(t[0, 1], np.tile([1, 1, 0, 0], (4, 1)))  # left half of the image
    np.testing.assert_array_equal(t[0, 2], 0)  # unmatched RoI: empty target


def test_paste_masks_inverts_the_crop():
    mask = np.zeros((1, 1, 16, 16), np.float32)
    mask[0, 0, 4:12, 2:10] = 1
    box = np.array([[[4, 2, 12, 10]]], np.float32)
    crop = mask_targets(mask, np.array([[0]]), box, (28, 28))[0]
    pasted = paste_masks(crop, box[0], (16, 16)).numpy()
    np.testing.assert_array_equal(pasted[0], mask[0, 0].astype(bool))


def test_mask_rcnn_trains_and_predicts_masks():
    batch = _with_masks(rectangles(num_images=2, size=64))
    model = MaskRCNN(3, **MASK)
    out = model.predict_on_batch(batch["images"])
    assert out["masks"].shape == (2, 20, 28, 28)
    assert np.all(out["masks"][out["labels"] < 0] == 0)
    model.compile(optimizer=keras.optimizers.Adam(2e-3))
    ds = tf.data.Dataset.from_tensor_slices(batch).batch(2).repeat()
    history = model.fit(ds, steps_per_epoch=10, epochs=3, verbose=0).history
    assert "mask_loss" in history and all(np.isfinite(v[-1]) for v in history.values())
    assert history["mask_loss"][-1] < history["mask_loss"][0], history["mask_loss"]
    clone = MaskRCNN.from_config(model.get_config())
    assert clone.get_config() == model.get_config()


def test_keypoint_targets_hand_made():
    from keras_det.ops.targets import keypoint_targets

    kp = np.array([[[[5.0, 2.0, 1.0], [9.9, 9.9, 1.0], [5.0, 5.0, 0.0], [20.0, 5.0, 2.0]]]], np.float32)
    rois = np.array([[[0, 0, 10, 10], [0, 0, 10, 10]]], np.float32)  # yxyx
    index, weight = keypoint_targets(kp, np.array([[0, -1]]), rois, (4, 4))
    # (x=5, y=2) -> cell (row 0, col 2) = 2; (9.9, 9.9) -> (3, 3) = 15; invisible and outside -> weight 0.
    np.testing.assert_array_equal(index[0, 0], [2, 15, 0, 0])
    np.testing.assert_array_equal(weight, [[[1, 1, 0, 0], [0, 0, 0, 0]]])


def test_keypoint_branch_trains_and_predicts():
    batch = _with_masks(rectangles(num_images=2, size=64))
    boxes = batch["bounding_boxes"]["boxes"]  # xyxy
    keypoints = np.stack([boxes[..., 0] + 1, boxes[..., 1] + 1, np.ones_like(boxes[..., 0])], -1)[:, :, None, :]
    keypoints = np.concatenate([keypoints, np.stack([boxes[..., 2] - 1, boxes[..., 3] - 1, np.ones_like(boxes[..., 0])], -1)[:, :, None]], 2)
    keypoints[batch["bounding_boxes"]["labels"] < 0] = 0
    batch = {**batch, "keypoints": keypoints.astype(np.float32)}  # top-left and bottom-right corners
    model = MaskRCNN(3, num_keypoints=2, **MASK)
    model.compile(optimizer=keras.optimizers.Adam(2e-3))
    ds = tf.data.Dataset.from_tensor_slices(batch).batch(2).repeat()
    history = model.fit(ds, steps_per_epoch=10, epochs=2, verbose=0).history
    assert history["keypoint_loss"][-1] < history["keypoint_loss"][0], history["keypoint_loss"]
    out = model.predict_on_batch(batch["images"])
    assert out["keypoints"].shape == (2, 20, 2, 3)
    assert np.all(out["keypoints"][out["labels"] < 0] == 0)
    assert MaskRCNN.from_config(model.get_config()).num_keypoints == 2


def test_mask_and_keypoint_losses_see_only_positive_rois_and_equal_the_full_sum():
    """The branches run on the positive RoIs only (the sampler's cap), with the loss of all sampled RoIs."""
    from keras_det.ops import boxes as box_ops

    batch = _with_masks(rectangles(num_images=2, size=64))
    boxes = batch["bounding_boxes"]["boxes"]
    keypoints = np.stack([boxes[..., 0] + 1, boxes[..., 1] + 1, np.ones_like(boxes[..., 0])], -1)[:, :, None, :]
    keypoints[batch["bounding_boxes"]["labels"] < 0] = 0
    model = MaskRCNN(3, num_keypoints=1, **{**MASK, "roi_batch_size_per_image": 40})
    images = tf.constant(batch["images"])
    model(images)
    features = model.features(images, False)
    proposals, valid = model.rpn(features, tf.shape(images)[1:3], training=True)
    gt_boxes = box_ops.convert_format(tf.constant(boxes), "xyxy", "yxyx")
    gt_labels = tf.constant(batch["bounding_boxes"]["labels"])
    heads = model.roi_heads
    rois, t = heads.box.sample(proposals, valid, gt_boxes, gt_labels)
    pos_rois, pos_t = heads.box.positives(rois, t)
    assert rois.shape[1] == 40 and pos_rois.shape[1] == 10  # int(40 * 0.25)
    assert float(tf.reduce_sum(pos_t["box_weights"])) == float(tf.reduce_sum(t["box_weights"])) > 0
    masks, kps = tf.constant(batch["masks"]), tf.constant(keypoints.astype(np.float32))
    np.testing.assert_allclose(heads.mask.loss(features, pos_rois, pos_t, masks), heads.mask.loss(features, rois, t, masks),
                               rtol=1e-5)
    np.testing.assert_allclose(heads.keypoint.loss(features, pos_rois, pos_t, kps),
                               heads.keypoint.loss(features, rois, t, kps), rtol=1e-5)
    # The training pass hands the mask / keypoint heads these same positives.
    losses, inter = heads.compute_losses(features, proposals, valid, gt_boxes, gt_labels, False, masks=masks, keypoints=kps)
    assert {"roi_cls_loss", "roi_box_loss", "mask_loss", "keypoint_loss"} == set(losses)
    assert inter["positive_rois"].shape[1] == 10 and inter["rois"].shape[1] == 40


def test_branches_run_on_the_used_detection_slots_only():
    """Masks / keypoints of the first max(num_detections) slots equal the heads run on all K slots; the rest are 0."""
    from keras_det.ops import boxes as box_ops

    images = tf.constant(rectangles(num_images=2, size=64)["images"])
    model = MaskRCNN(3, num_keypoints=2, **MASK)
    scores = model(images)["scores"].numpy()
    # A threshold that keeps a different number of detections per image, fewer than the K = 20 slots
    # (greedy NMS keeps the same higher-scored boxes whatever the threshold): midway between two scores.
    kept = np.sort(scores[scores > 0])
    mids = (kept[1:] + kept[:-1]) / 2
    counts = [(scores > m).sum(axis=1) for m in mids]
    model.decoder.score_threshold = float(next(m for m, c in zip(mids, counts) if c[0] != c[1] and 0 < c.max() < 20))
    out = model(images)
    counts = out["num_detections"].numpy()
    assert 0 < counts.max() < 20 and counts[0] != counts[1], counts
    features = model.features(images, False)
    boxes = box_ops.convert_format(out["boxes"], "xyxy", "yxyx")
    labels = tf.maximum(out["labels"], 0)
    present = (out["labels"].numpy() >= 0)[..., None, None]
    logits = tf.transpose(model.roi_heads.mask.logits(features, boxes), [0, 1, 4, 2, 3])
    full = tf.sigmoid(tf.gather(logits, labels[..., None], batch_dims=2)[:, :, 0]).numpy() * present
    np.testing.assert_allclose(out["masks"].numpy(), full, atol=1e-6)
    kps = decode_keypoints(model.roi_heads.keypoint.logits(features, boxes), boxes).numpy() * present
    np.testing.assert_allclose(out["keypoints"].numpy(), kps, atol=1e-5)
    assert out["masks"].shape == (2, 20, 28, 28) and out["keypoints"].shape == (2, 20, 2, 3)
    model.decoder.score_threshold = 1.0  # no detection at all: zero-length branches, zero outputs
    out = model(images)
    assert out["num_detections"].numpy().tolist() == [0, 0]
    assert out["masks"].shape == (2, 20, 28, 28) and not np.any(out["masks"].numpy())
    assert out["keypoints"].shape == (2, 20, 2, 3) and not np.any(out["keypoints"].numpy())
    # The traced graph (export / predict) keeps the static K.
    traced = tf.function(model).get_concrete_function(tf.TensorSpec([None, 64, 64, 3], tf.float32))
    assert traced.structured_outputs["masks"].shape.as_list() == [None, 20, 28, 28]


def test_keypoint_head_trains_on_shapes_keypoints_and_is_scored_with_oks():
    """Mask R-CNN + keypoint head on `shapes` keypoints: a few steps, predictions, COCO keypoint (OKS) evaluation."""
    from keras_det import data, presets
    from keras_det.data import shapes
    from keras_det.metrics import COCOEvaluator, evaluate_coco

    keras.utils.set_random_seed(0)
    train, info = data.load("shapes", "train", "xyxy", with_info=True, num_images=8, image_size=64, max_objects=3,
                            with_keypoints=True)
    batches = data.batch(train, 4, max_boxes=4).repeat()
    model = presets.build("mask_rcnn_keypoints_test", info.num_classes, bounding_box_format="xyxy")
    assert model.num_keypoints == shapes.NUM_KEYPOINTS
    model.compile(optimizer=keras.optimizers.Adam(2e-3))
    model(next(iter(batches))["images"])
    before = [w.numpy().copy() for w in model.keypoint_head.weights]
    history = model.fit(batches, steps_per_epoch=3, epochs=2, verbose=0).history
    assert all(np.isfinite(v).all() for v in history.values()) and len(history["keypoint_loss"]) == 2
    assert any(not np.allclose(b, w.numpy()) for b, w in zip(before, model.keypoint_head.weights))

    test, test_info = data.load("shapes", "test", "xywh", with_info=True, num_images=4, image_size=64, max_objects=3,
                                with_keypoints=True)
    gt = data.to_coco(test, test_info)
    sigmas = test_info.keypoints["sigmas"]
    results, evaluator = [], COCOEvaluator(bounding_box_format="xywh", iou_type="keypoints", sigmas=sigmas)
    model.decoder.score_threshold = 0.0  # an untrained model's scores are low: keep its detections
    for batch in data.batch(test, 4):
        out = model.predict_on_batch(batch["images"])
        assert out["keypoints"].shape[2:] == (shapes.NUM_KEYPOINTS, 3)
        for i, image_id in enumerate(batch["image_id"].numpy()):
            for j in range(int(out["num_detections"][i])):
                results.append({"image_id": int(image_id), "category_id": int(out["labels"][i, j]) + 1,
                                "keypoints": [float(v) for v in out["keypoints"][i, j].reshape(-1)],
                                "score": float(out["scores"][i, j])})
        # The in-memory evaluator (the benchmarks' path) sees the same ground truth (box areas) and points.
        evaluator.update_state(batch, {k: out[k] for k in ("scores", "labels", "num_detections", "keypoints")})
    assert results
    stats = evaluate_coco(gt, results, iou_type="keypoints", sigmas=sigmas)
    assert evaluator.result() == pytest.approx(stats, abs=1e-12)
    assert set(stats) == {"AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"}
    assert all(v == -1.0 or 0.0 <= v <= 1.0 for v in stats.values()), stats
