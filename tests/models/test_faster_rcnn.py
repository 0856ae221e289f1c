import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_det import presets
from keras_det.layers.rpn import ProposalGenerator
from keras_det.models.faster_rcnn import FasterRCNN

from .synthetic import rectangles, dataset as _dataset

SMALL = presets.arguments("faster_rcnn_test")  # the smallest configuration that exercises every path


def test_proposal_generator_hand_made():
    anchors = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [40, 40, 40.0005, 50]], np.float32)
    logits = np.array([[3.0, 2.0, 1.0, 5.0]], np.float32)
    gen = ProposalGenerator(pre_nms_topk_test=4, post_nms_topk_test=3, nms_iou_threshold=0.5)
    props, scores = gen(logits, np.zeros((1, 4, 4), np.float32), anchors, tf.constant([25, 25]), training=False)
    # anchor 3 is too thin (< 1e-3 after clipping to 25x25 it is empty); anchor 1 is suppressed
    # by anchor 0 (IoU 81/119 > 0.5); anchor 2 is clipped to the 25x25 image.
    np.testing.assert_allclose(props[0], [[0, 0, 10, 10], [20, 20, 25, 25], [0, 0, 0, 0]], atol=1e-5)
    np.testing.assert_allclose(scores[0], [1 / (1 + np.exp(-3)), 1 / (1 + np.exp(-1)), -1], rtol=1e-6)


def test_rpn_targets_on_hand_made_anchors():
    model = FasterRCNN(2, **SMALL)
    anchors = tf.constant([[0, 0, 32, 32], [0, 0, 16, 16], [40, 40, 72, 72], [8, 8, 40, 40]], tf.float32)
    gt = tf.constant([[[0, 0, 30, 32]]], tf.float32)
    t = model.rpn.targets(anchors, gt, tf.constant([[1]]))
    # IoU: 960/1024 >= 0.7 positive; 256/1024 < 0.3 negative; 0 negative; 22*24/(960+1024-528) in [0.3, 0.7) ignored.
    np.testing.assert_array_equal(t["labels"], [[2, 0, 0, -1]])


def test_forward_contract_and_losses_decrease():
    batch = rectangles(num_images=4, size=96)
    model = FasterRCNN(3, **SMALL)
    out = model.predict(batch["images"], verbose=0)
    assert out["boxes"].shape == (4, 20, 4) and out["boxes"].dtype == np.float32
    assert out["scores"].shape == (4, 20) and out["labels"].dtype == np.int32
    assert out["num_detections"].shape == (4,)
    for b in range(4):
        n = out["num_detections"][b]
        assert np.all(out["labels"][b, n:] == -1) and np.all(out["scores"][b, n:] == 0)
    model.compile(optimizer=keras.optimizers.Adam(2e-3))
    history = model.fit(_dataset(batch), steps_per_epoch=15, epochs=4, verbose=0).history
    for key in ("rpn_cls_loss", "rpn_box_loss", "roi_cls_loss", "roi_box_loss", "loss"):
        assert key in history
    assert history["loss"][-1] < 0.6 * history["loss"][0], history["loss"]
    assert history["rpn_cls_loss"][-1] < history["rpn_cls_loss"][0]
    on_batch = model.predict_on_batch(batch["images"])
    from_dicts = model.predict(_dataset(batch, repeat=False), verbose=0)
    np.testing.assert_allclose(on_batch["scores"], from_dicts["scores"], rtol=1e-5, atol=1e-6)
    evaluation = model.evaluate(_dataset(batch, repeat=False), verbose=0, return_dict=True)
    assert np.isfinite(evaluation["loss"])


def test_empty_images_train_without_nan():
    batch = rectangles(num_images=2, size=64)
    batch["bounding_boxes"]["labels"][:] = -1
    model = FasterRCNN(3, roi_pooling="pool", **SMALL)
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    history = model.fit(_dataset(batch), steps_per_epoch=2, epochs=1, verbose=0).history
    assert all(np.isfinite(v[-1]) for v in history.values())
    assert history["rpn_box_loss"][-1] == 0 and history["roi_box_loss"][-1] == 0


def test_keras_file_round_trip(tmp_path):
    model = FasterRCNN(3, **SMALL)
    x = rectangles(num_images=1, size=64)["images"]
    before = model.predict_on_batch(x)
    model.save(str(tmp_path / "m.keras"))
    after = keras.saving.load_model(str(tmp_path / "m.keras")).predict_on_batch(x)
    for key in before:
        np.testing.assert_allclose(before[key], after[key], rtol=1e-5, atol=1e-6)


def test_config_round_trip_and_errors():
    model = FasterRCNN(5, bounding_box_format="rel_yxyx", **SMALL)
    clone = FasterRCNN.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    with pytest.raises(ValueError, match="without `loss`"):
        model.compile(loss="mse")
    with pytest.raises(ValueError, match="bounding_box_format"):
        FasterRCNN(2, bounding_box_format="xyz", backbone="tiny")
    with pytest.raises(ValueError, match="feature_tap"):
        FasterRCNN(2, feature_tap="C9", backbone="tiny")


def test_fpn_variant_trains_and_predicts():
    from keras_det.layers.fpn import FeaturePyramid

    pyramid = FeaturePyramid(8, extra_levels=1)
    maps = pyramid({"C3": tf.zeros([1, 12, 12, 4]), "C4": tf.zeros([1, 6, 6, 5]), "C5": tf.zeros([1, 3, 3, 6])})
    assert {k: tuple(v.shape[1:]) for k, v in maps.items()} == {
        "P3": (12, 12, 8), "P4": (6, 6, 8), "P5": (3, 3, 8), "P6": (2, 2, 8)
    }
    kw = {k: v for k, v in SMALL.items() if k != "anchor_sizes"}
    model = FasterRCNN(3, fpn=True, fpn_filters=32, anchor_sizes=(16, 32, 64, 128), **kw)
    batch = rectangles(num_images=2, size=96)
    model.compile(optimizer=keras.optimizers.Adam(2e-3))
    history = model.fit(_dataset(batch), steps_per_epoch=8, epochs=2, verbose=0).history
    assert all(np.isfinite(v[-1]) for v in history.values())
    assert history["loss"][-1] < history["loss"][0]
    out = model.predict_on_batch(batch["images"])
    assert out["boxes"].shape == (2, 20, 4)
    # 96 px: P3..P6 are 12, 6, 3, 2 cells with 3 anchors each.
    assert model.rpn.anchors(model.features(tf.zeros([1, 96, 96, 3]), False)).shape[0] == 3 * (144 + 36 + 9 + 4)
    with pytest.raises(ValueError, match="one size per level"):
        FasterRCNN(3, fpn=True, anchor_sizes=(16, 32), **kw)
    assert FasterRCNN.from_config(model.get_config()).get_config() == model.get_config()


def test_fpn_on_the_last_two_stages():
    # torchvision's MobileNetV3 320 FPN layout: a pyramid on C4, C5 (+ pooled P6); RoIs pooled from P4-P5.
    kw = {k: v for k, v in SMALL.items() if k != "anchor_sizes"}
    model = FasterRCNN(3, fpn=True, fpn_taps=("C4", "C5"), fpn_filters=16, anchor_sizes=(32, 64, 128), **kw)
    assert model.rpn.levels == ("P4", "P5", "P6")
    assert model.roi_heads.box.pooler.levels == ("P4", "P5")
    # 96 px: P4..P6 are 6, 3, 2 cells with 3 anchors each.
    assert model.rpn.anchors(model.features(tf.zeros([1, 96, 96, 3]), False)).shape[0] == 3 * (36 + 9 + 4)
    out = model.predict_on_batch(np.zeros((1, 96, 96, 3), np.float32))
    assert out["boxes"].shape == (1, 20, 4)
    assert FasterRCNN.from_config(model.get_config()).rpn.levels == ("P4", "P5", "P6")
    for bad in (("C4",), ("C3", "C5"), ("C4", "C9")):
        with pytest.raises(ValueError, match="`fpn_taps` must be two or more consecutive taps"):
            FasterRCNN(3, fpn=True, fpn_taps=bad, anchor_sizes=(32, 64, 128), **kw)


def test_fine_tuned_backbone_moves_only_its_top_layers():
    from keras_det.models.transfer import fine_tune, iter_layers

    model = FasterRCNN(3, **SMALL)
    batch = rectangles(num_images=2, size=64)
    model.predict_on_batch(batch["images"])
    multipliers = fine_tune(model.backbone, num_layers=2, lr_multiplier=0.1)
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    assert model.optimizer.lr_multipliers == multipliers and len(multipliers) == 2
    layers = [layer for layer in iter_layers(model.backbone) if layer.weights]
    before = {layer.name: [w.numpy().copy() for w in layer.weights] for layer in layers}
    model.fit(_dataset(batch), steps_per_epoch=2, epochs=1, verbose=0)
    moved = sorted(
        layer.name for layer in layers if any(not np.array_equal(b, w.numpy()) for b, w in zip(before[layer.name], layer.weights))
    )
    # Only the two top convolutions of C4 move; every BatchNorm stays frozen (statistics included).
    assert moved == ["stage4_conv1", "stage4_conv2"], moved


def test_train_on_batch_with_a_dict():
    model = FasterRCNN(3, **SMALL)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    logs = model.train_on_batch(rectangles(num_images=2, size=64), return_dict=True)
    assert set(logs) >= {"loss", "rpn_cls_loss", "roi_box_loss"} and np.isfinite(logs["loss"])
