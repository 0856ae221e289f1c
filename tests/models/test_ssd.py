import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_det import presets
from keras_det.models.ssd import SSD, default_aspect_ratios

from .synthetic import rectangles, dataset as _dataset, check_prediction_contract as _check_contract

SMALL = presets.arguments("ssd_test")  # the smallest configuration that exercises every path


def test_ssd300_default_box_count():
    model = SSD(20, backbone="mobilenet_v2", image_size=(300, 300))
    assert model.feature_map_sizes == [(38, 38), (19, 19), (10, 10), (5, 5), (3, 3), (1, 1)]
    assert model.num_anchors_per_level == [4, 6, 6, 6, 4, 4]
    # 38²·4 + 19²·6 + 10²·6 + 5²·6 + 3²·4 + 1·4 = 8732, the paper's count.
    assert model.default_boxes.shape == (8732, 4)


def test_small_config_default_boxes_and_scales():
    model = SSD(3, **SMALL)
    assert model.feature_map_sizes == [(16, 16), (8, 8), (4, 4), (2, 2), (1, 1)]
    assert model.num_anchors_per_level == [4, 6, 6, 4, 4]
    assert default_aspect_ratios(5) == [(1.0, 2.0, 0.5)] + [(1.0, 2.0, 0.5, 3.0, 1.0 / 3.0)] * 2 + [(1.0, 2.0, 0.5)] * 2
    boxes = model.default_boxes
    assert boxes.shape == (16 * 16 * 4 + 8 * 8 * 6 + 4 * 4 * 6 + 2 * 2 * 4 + 4, 4) == (1524, 4)
    scales = [0.2, 0.375, 0.55, 0.725, 0.9, 1.0]
    # Level 0, cell (8, 8) centred at (8.5 / 16) * 128 = 68: boxes s0, sqrt(s0 s1), then ratios 2 and 1/2.
    cell = boxes[(8 * 16 + 8) * 4 : (8 * 16 + 8) * 4 + 4]
    h, w = cell[:, 2] - cell[:, 0], cell[:, 3] - cell[:, 1]
    np.testing.assert_allclose((cell[:, 0] + cell[:, 2]) / 2, 68.0, atol=1e-4)
    s0, s01 = 0.2 * 128, math.sqrt(0.2 * 0.375) * 128
    np.testing.assert_allclose(w, [s0, s01, s0 * math.sqrt(2), s0 / math.sqrt(2)], rtol=1e-5)
    np.testing.assert_allclose(h, [s0, s01, s0 / math.sqrt(2), s0 * math.sqrt(2)], rtol=1e-5)
    # Level 1 (8x8, 6 boxes): first box of cell (4, 4) has side s1 = 0.375 * 128 = 48 at (72, 72).
    first = boxes[1024 + (4 * 8 + 4) * 6]
    np.testing.assert_allclose(first, [72 - 24, 72 - 24, 72 + 24, 72 + 24], atol=1e-4)
    # Last level: one cell, 4 boxes; the square ones are 0.9 and sqrt(0.9) of the image, clipped.
    last = boxes[-4:]
    np.testing.assert_allclose(last[0], [6.4, 6.4, 121.6, 121.6], atol=1e-4)
    half = 64 * math.sqrt(scales[4] * scales[5])
    np.testing.assert_allclose(last[1], [64 - half, 64 - half, 64 + half, 64 + half], atol=1e-4)


def test_hard_negative_mining_keeps_three_to_one():
    model = SSD(3, **SMALL)
    n = model.default_boxes.shape[0]
    rng = np.random.default_rng(0)
    logits = tf.constant(rng.normal(size=(3, n, 4)), tf.float32)
    deltas = tf.zeros((3, n, 4))
    gt = tf.constant([[[10, 10, 60, 50], [70, 70, 120, 126]], [[0, 0, 128, 128], [0, 0, 0, 0]], [[0, 0, 0, 0]] * 2], tf.float32)
    labels = tf.constant([[0, 2], [1, -1], [-1, -1]], tf.int32)
    out = model.ssd_losses(logits, deltas, gt, labels, return_masks=True)
    pos = out["positive"].numpy().sum(-1)
    neg = out["hard_negative"].numpy().sum(-1)
    assert pos[0] > 2 and pos[1] >= 1 and pos[2] == 0
    np.testing.assert_array_equal(neg, 3 * pos)
    # The chosen negatives are the ones with the highest background loss.
    bg_loss = -tf.nn.log_softmax(logits, -1)[..., 0].numpy()
    negatives = ~out["positive"].numpy()[0]
    chosen = out["hard_negative"].numpy()[0]
    assert bg_loss[0][chosen].min() >= bg_loss[0][negatives & ~chosen].max()
    # The loss is the CE on positives + hard negatives over the number of positives.
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.maximum(model.target_encoder(model.default_boxes, gt, labels)["labels"], 0), logits=logits
    ).numpy()
    selected = out["positive"].numpy() | out["hard_negative"].numpy()
    np.testing.assert_allclose(out["cls_loss"], ce[selected].sum() / pos.sum(), rtol=1e-5)
    # Fewer negatives than 3 per positive: all of them are kept.
    greedy = SSD(3, neg_pos_ratio=10000, **SMALL)
    out = greedy.ssd_losses(logits, deltas, gt, labels, return_masks=True)
    all_neg = (~out["positive"].numpy()).sum(-1)
    np.testing.assert_array_equal(out["hard_negative"].numpy().sum(-1)[:2], all_neg[:2])


def test_overfit_loss_decreases_and_predict_contract():
    batch = rectangles(num_images=4, size=128, seed=1)
    model = SSD(3, **SMALL)
    _check_contract(model.predict(batch["images"], verbose=0), 4, 20)
    model.compile(optimizer=keras.optimizers.Adam(2e-3))
    history = model.fit(_dataset(batch), steps_per_epoch=8, epochs=3, verbose=0).history
    print("epoch losses", {k: [round(x, 4) for x in v] for k, v in history.items()})
    assert set(history) >= {"loss", "cls_loss", "box_loss"}
    assert history["loss"][-1] < 0.3 * history["loss"][0], history["loss"]
    assert history["box_loss"][-1] < history["box_loss"][0]
    out = model.predict(batch, verbose=0)
    _check_contract(out, 4, 20)
    assert out["num_detections"].min() > 0


def test_empty_images_train_without_nan():
    batch = rectangles(num_images=2, size=128)
    batch["bounding_boxes"]["labels"][:] = -1
    # SSDLite head on the empty batch (its predict contract is checked too).
    model = SSD(3, bounding_box_format="rel_yxyx", head="ssdlite", **SMALL)
    _check_contract(model.predict_on_batch(batch["images"]), 2, 20)
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    history = model.fit(_dataset(batch), steps_per_epoch=2, epochs=1, verbose=0).history
    assert all(np.isfinite(v[-1]) for v in history.values())
    assert history["box_loss"][-1] == 0


def test_config_round_trip_and_errors():
    model = SSD(5, bounding_box_format="rel_yxyx", head="ssdlite", aspect_ratios=(1.0, 2.0), **SMALL)
    config = model.get_config()
    assert config["backbone"] == "tiny" and config["backbone_weights"] is None
    clone = SSD.from_config(config)
    assert clone.get_config() == config
    assert clone.num_anchors_per_level == [3] * 5
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model))
    assert isinstance(restored, SSD) and restored.get_config() == config
    with pytest.raises(ValueError, match="built for 128x128"):
        model(np.zeros((1, 96, 96, 3), np.float32))
    with pytest.raises(ValueError, match="head"):
        SSD(2, head="yolo", backbone="tiny", image_size=(64, 64))
    with pytest.raises(ValueError, match="aspect_ratios"):
        SSD(2, aspect_ratios=[(1.0,)] * 2, **SMALL)


def test_keras_file_save_load_round_trip(tmp_path):
    model = SSD(3, backbone="tiny", image_size=(64, 64), feature_taps=("C4", "C5"), extra_filters=16, score_threshold=0.0)
    assert model.feature_map_sizes == [(4, 4), (2, 2), (1, 1)]
    images = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    before = model.predict_on_batch(images)
    model.save(tmp_path / "ssd.keras")
    after = keras.saving.load_model(tmp_path / "ssd.keras").predict_on_batch(images)
    assert before["num_detections"].min() > 0
    for key in before:
        np.testing.assert_allclose(after[key], before[key], rtol=1e-5, atol=1e-5)


def _layer_types(model):
    return {type(layer).__name__ for layer in model._flatten_layers(include_self=False)}


def test_extra_kind_sets_the_extra_blocks_apart_from_the_head():
    mixed = SSD(3, head="ssd", extra_kind="ssdlite", **SMALL)
    assert "DepthwiseConv2D" in _layer_types(mixed.extras) and "DepthwiseConv2D" not in _layer_types(mixed.head)
    plain = SSD(3, head="ssd", **SMALL)  # None: the extras follow the head
    assert "DepthwiseConv2D" not in _layer_types(plain.extras)
    lite = SSD(3, head="ssdlite", **SMALL)
    assert "DepthwiseConv2D" in _layer_types(lite.extras) and "DepthwiseConv2D" in _layer_types(lite.head)
    config = mixed.get_config()
    assert config["extra_kind"] == "ssdlite" and SSD.from_config(config).get_config() == config
    with pytest.raises(ValueError, match="extra_kind"):
        SSD(2, extra_kind="yolo", **SMALL)


@pytest.mark.parametrize("name, head_depthwise", [("ssd_320", False), ("ssdlite_320", True)])
def test_ssd_mobilenet_v2_presets_follow_the_mobilenet_v2_paper(name, head_depthwise):
    # Sandler et al. (2018), sec. 6.2: the first map is the expansion at stride 16 (576 channels), the others
    # follow the stride-32 last layer; depthwise-separable extras of 512, 256, 256 channels.
    model = presets.build(name, 20, image_size=(320, 320))
    taps = model.backbone.output
    assert tuple(taps["C4"].shape[1:]) == (20, 20, 576) and tuple(taps["C5"].shape[1:]) == (10, 10, 1280)
    assert model.feature_map_sizes == [(20, 20), (10, 10), (5, 5), (3, 3), (1, 1)]
    assert [int(o.shape[-1]) for o in model.extras.outputs] == [512, 256, 256]
    assert "DepthwiseConv2D" in _layer_types(model.extras)
    assert ("DepthwiseConv2D" in _layer_types(model.head)) == head_depthwise
    # 20²·4 + 10²·6 + 5²·6 + 3²·4 + 1·4
    assert model.default_boxes.shape == (1600 + 600 + 150 + 36 + 4, 4)
