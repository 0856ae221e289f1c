import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_det import presets
from keras_det.models import YOLO, YOLOv1
from keras_det.models.yolo import priors_per_level
from keras_det.ops.anchors import prior_grid
from keras_det.ops.anchors import kmeans_anchors

from .synthetic import rectangles, dataset as _dataset, check_prediction_contract as _check_contract

V1 = presets.arguments("yolo_v1_test")  # the smallest configurations that exercise every path
MS = presets.arguments("yolo_test")
PRIORS = MS["priors"]


def test_v1_target_grid_by_hand():
    model = YOLOv1(3, **V1)  # 128 px, S = 4: cells of 32 px
    gt = tf.constant([[[10, 40, 50, 60], [64, 64, 128, 128], [20, 45, 36, 55], [0, 0, 0, 0]]], tf.float32)
    labels = tf.constant([[2, 0, 1, -1]])
    t = model.targets(gt, labels)
    mask = np.zeros((4, 4))
    mask[0, 1] = mask[3, 3] = 1
    np.testing.assert_array_equal(t["object_mask"][0], mask)
    expected_labels = np.full((4, 4), -1)
    # Centres (30, 50) and (28, 50) share cell (0, 1): the larger box (label 2) is kept.
    expected_labels[0, 1], expected_labels[3, 3] = 2, 0
    np.testing.assert_array_equal(t["labels"][0], expected_labels)
    box_t = t["box_targets"].numpy()[0]
    np.testing.assert_allclose(box_t[0, 1], [30 / 32, (50 - 32) / 32, math.sqrt(40 / 128), math.sqrt(20 / 128)], rtol=1e-6)
    np.testing.assert_allclose(box_t[3, 3], [0.0, 0.0, math.sqrt(0.5), math.sqrt(0.5)], atol=1e-6)
    assert np.all(box_t[mask == 0] == 0)
    np.testing.assert_allclose(t["boxes"][0, 0, 1], [10, 40, 50, 60])


def test_v1_loss_responsible_predictor_by_hand():
    model = YOLOv1(3, **V1)
    gt = tf.constant([[[10, 40, 50, 60]]], tf.float32)
    labels = tf.constant([[2]])
    raw = np.zeros((1, 4, 4, 5 * 2 + 3), np.float32)
    values = np.array([30 / 32, 18 / 32, math.sqrt(40 / 128), math.sqrt(20 / 128)])
    raw[0, 0, 1, 5:9] = np.log(values / (1 - values))  # predictor 1 of cell (0, 1) sits exactly on the GT
    losses = {k: float(v) for k, v in model.loss_terms(tf.constant(raw), gt, labels).items()}
    # Predictor 1 has IoU 1 > predictor 0's, so it is responsible: no coordinate error;
    # its confidence 0.5 has target IoU = 1; the other 31 predictors have confidence 0.5;
    # the class distribution is uniform (1/3) against one-hot class 2.
    assert losses["coord_loss"] == pytest.approx(0.0, abs=1e-8)
    assert losses["obj_loss"] == pytest.approx(0.25, abs=1e-4)
    assert losses["noobj_loss"] == pytest.approx(0.5 * 31 * 0.25, rel=1e-6)
    assert losses["class_loss"] == pytest.approx((2 / 3) ** 2 + 2 * (1 / 3) ** 2, rel=1e-5)
    # The cross-entropies on the same outputs (logits 0: confidences and class probabilities as above):
    # BCE(0.5 against IoU 1) = BCE(0.5 against 0) = log 2 per predictor; -log(1/3) for the class.
    ce = YOLOv1(3, **{**V1, "class_loss": "ce", "confidence_loss": "bce"})
    ce_losses = {k: float(v) for k, v in ce.loss_terms(tf.constant(raw), gt, labels).items()}
    assert ce_losses == pytest.approx({"coord_loss": 0.0, "obj_loss": math.log(2), "noobj_loss": 0.5 * 31 * math.log(2),
                                       "class_loss": math.log(3)}, rel=1e-5, abs=1e-8)
    # With predictor 1 off the box, predictor 0 (closer, at the cell centre) becomes responsible:
    # coordinates (0.5 - t)^2 summed, times lambda_coord = 5.
    raw[0, 0, 1, 5:9] = -8.0
    coord = float(model.loss_terms(tf.constant(raw), gt, labels)["coord_loss"])
    assert coord == pytest.approx(5 * np.sum((0.5 - values) ** 2), rel=1e-5)


def test_prior_grid_and_multiscale_assignment_by_hand():
    grid = prior_grid((2, 2), 16, [(8, 4), (10, 20)]).numpy()
    assert grid.shape == (8, 4)
    np.testing.assert_allclose(grid[:2], [[6, 4, 10, 12], [-2, 3, 18, 13]], atol=1e-5)  # cell (0, 0), centre (8, 8)
    np.testing.assert_allclose(grid[6], [22, 20, 26, 28], atol=1e-5)  # cell (1, 1), prior 0
    model = YOLO(3, **MS)
    assert model.prior_boxes.shape == (16 * 16 * 3 + 8 * 8 * 3 + 4 * 4 * 3, 4)
    # GT 30x30 centred (40, 72): best prior (32, 32) = level 1 prior 1, stride-16 cell (2, 4).
    # GT 60x60 centred (96, 32): best prior (64, 64) = level 2 prior 1, stride-32 cell (3, 1).
    gt = tf.constant([[[25, 57, 55, 87], [66, 2, 126, 62], [0, 0, 0, 0]]], tf.float32)
    t = model.targets(gt, tf.constant([[1, 2, -1]]))
    positives = np.flatnonzero(t["box_weights"][0].numpy())
    first = 768 + (2 * 8 + 4) * 3 + 1
    second = 768 + 192 + (3 * 4 + 1) * 3 + 1
    np.testing.assert_array_equal(positives, [first, second])
    np.testing.assert_array_equal(t["labels"][0].numpy()[positives], [2, 3])
    np.testing.assert_allclose(t["matched_boxes"][0].numpy()[positives], gt[0, :2])
    # The one coder: the encoded targets of the positives decode back to their GT boxes.
    decoded = model.box_coder.decode(t["box_targets"], model.prior_boxes)[0].numpy()[positives]
    np.testing.assert_allclose(decoded, gt[0, :2], atol=1e-4)


@pytest.mark.parametrize("losses", [{"class_loss": "sse", "confidence_loss": "sse"},
                                    {"class_loss": "ce", "confidence_loss": "bce"}], ids=["paper", "cross_entropy"])
def test_v1_overfit_and_predict_contract(losses):
    batch = rectangles(num_images=4, size=128, seed=1)
    model = YOLOv1(3, **{**V1, **losses})
    _check_contract(model.predict(batch["images"], verbose=0), 4, 20)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(_dataset(batch), steps_per_epoch=8, epochs=3, verbose=0).history
    print("epoch losses", {k: [round(x, 4) for x in v] for k, v in history.items()})
    assert set(history) >= {"loss", "coord_loss", "obj_loss", "noobj_loss", "class_loss"}
    assert history["loss"][-1] < 0.3 * history["loss"][0], history["loss"]
    assert history["coord_loss"][-1] < history["coord_loss"][0]
    _check_contract(model.predict(batch, verbose=0), 4, 20)


def test_multiscale_overfit_with_kmeans_priors():
    batch = rectangles(num_images=4, size=96, seed=1)
    b = batch["bounding_boxes"]
    wh = (b["boxes"][..., 2:] - b["boxes"][..., :2])[b["labels"] >= 0]
    wh = np.concatenate([wh, wh * 0.5, wh * 0.75])  # a few more sizes than boxes
    priors = priors_per_level(kmeans_anchors(wh, 9, seed=0))
    model = YOLO(3, **{**MS, "priors": priors, "image_size": (96, 96)})
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(_dataset(batch), steps_per_epoch=8, epochs=3, verbose=0).history
    print("epoch losses", {k: [round(x, 4) for x in v] for k, v in history.items()})
    assert set(history) >= {"loss", "box_loss", "objectness_loss", "class_loss"}
    assert history["loss"][-1] < 0.6 * history["loss"][0], history["loss"]
    assert history["box_loss"][-1] < history["box_loss"][0]
    _check_contract(model.predict(batch, verbose=0), 4, 20)


@pytest.mark.parametrize("cls, config", [(YOLOv1, V1), (YOLO, {**MS, "box_loss": "giou"})], ids=["v1", "multiscale"])
def test_empty_images_train_without_nan(cls, config):
    batch = rectangles(num_images=2, size=64)
    batch["bounding_boxes"]["labels"][:] = -1
    model = cls(3, **{**config, "image_size": (64, 64)})
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    history = model.fit(_dataset(batch), steps_per_epoch=2, epochs=1, verbose=0).history
    assert all(np.isfinite(v[-1]) for v in history.values())


def test_config_round_trip_and_errors():
    for cls, config in ((YOLOv1, V1), (YOLOv1, {**V1, "feature_tap": "C4", "head_local": True}),
                        (YOLOv1, {**V1, "class_loss": "ce", "confidence_loss": "bce"}), (YOLO, MS)):
        model = cls(4, bounding_box_format="rel_yxyx", **config)
        cfg = model.get_config()
        assert cfg["backbone"] == "tiny" and cfg["backbone_weights"] is None
        clone = cls.from_config(cfg)
        assert clone.get_config() == cfg
        restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model))
        assert type(restored) is cls and restored.get_config() == cfg
    local = YOLOv1(3, **{**V1, "feature_tap": "C4", "head_local": True})
    _check_contract(local.predict_on_batch(np.zeros((2, 128, 128, 3), np.float32)), 2, 20)
    assert local.head.local_out is not None and YOLOv1(3, **V1).head.local_out is None
    # The paper's stride-2 head conv: 448 px -> C5 14x14 -> 7x7; a 4x4 C5 (128 px) keeps its size.
    assert YOLOv1(2, backbone="tiny").head.downsample
    assert not YOLOv1(2, **V1).head.downsample
    default = YOLO(2, backbone="tiny", image_size=(208, 208))
    np.testing.assert_allclose(default.priors[0][0], (5.0, 6.5))  # YOLOv3's (10, 13) at 416, halved
    with pytest.raises(ValueError, match="variant"):
        YOLO(2, backbone="tiny", variant="v9")
    with pytest.raises(ValueError, match="feature_tap"):
        YOLOv1(2, backbone="tiny", feature_tap="C9")
    with pytest.raises(ValueError, match=r"`class_loss` must be one of \('sse', 'ce'\), got 'bce'"):
        YOLOv1(2, backbone="tiny", class_loss="bce")
    with pytest.raises(ValueError, match="`confidence_loss` must be one of"):
        YOLOv1(2, backbone="tiny", confidence_loss="ce")
    with pytest.raises(ValueError, match="built for 128x128"):
        model(np.zeros((1, 96, 96, 3), np.float32))
    with pytest.raises(ValueError, match="cannot be split"):
        priors_per_level(np.ones((4, 2)))


def test_former_variant_argument_and_saved_configs():
    """YOLO(variant="v1") builds a YOLOv1 (deprecated); configs of the former single class load."""
    with pytest.warns(DeprecationWarning, match="YOLOv1"):
        legacy = YOLO(3, variant="v1", priors=None, neck_filters=16, **V1)
    assert type(legacy) is YOLOv1 and legacy.grid_size == 4
    assert type(YOLO(3, variant="multiscale", **MS)) is YOLO
    # The keys every config of the former class held (both variants' arguments).
    former = dict(num_classes=3, backbone="tiny", backbone_weights=None, bounding_box_format="xyxy", image_size=[128, 128],
                  grid_size=4, boxes_per_cell=2, head_filters=32, fc_dim=64, dropout=0.0, lambda_coord=5.0,
                  lambda_noobj=0.5, confidence_target="iou", priors=None, neck_filters=32, box_loss="ciou",
                  ignore_threshold=0.5, score_threshold=0.005, nms_iou_threshold=0.5, max_detections=20,
                  pre_nms_topk=1000, name="yolo", class_names=["a", "b", "c"])
    v1 = keras.saving.deserialize_keras_object(
        {"module": "keras_det.models.yolo", "class_name": "YOLO", "registered_name": "keras_det>YOLO",
         "config": {**former, "variant": "v1"}})
    assert type(v1) is YOLOv1 and v1.grid_size == 4 and v1.head.fc_dim == 64 and v1.class_names == ("a", "b", "c")
    ms = YOLO.from_config({**former, "variant": "multiscale", "priors": [list(map(list, p)) for p in PRIORS]})
    assert type(ms) is YOLO and ms.priors == tuple(tuple((float(w), float(h)) for w, h in p) for p in PRIORS)


def test_keras_file_save_load_round_trip(tmp_path):
    model = YOLO(3, backbone="tiny", image_size=(64, 64), head_filters=16, neck_filters=16, score_threshold=0.0)
    images = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    before = model.predict_on_batch(images)
    model.save(tmp_path / "yolo.keras")
    after = keras.saving.load_model(tmp_path / "yolo.keras").predict_on_batch(images)
    assert before["num_detections"].min() > 0
    for key in before:
        np.testing.assert_allclose(after[key], before[key], rtol=1e-5, atol=1e-5)
