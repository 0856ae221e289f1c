"""keras_det.ops.image: the one resize of training and serving."""

import numpy as np
import pytest
import tensorflow as tf

from keras_det import data
from keras_det.export import _Serving
from keras_det.ops import image as image_ops


def test_fit_size_hand_computed():
    # s = min(64/100, 64/50) = 0.64 -> (64, 32); s = min(4/3, 4/7) = 4/7 -> (round(1.714), 4) = (2, 4).
    assert image_ops.fit_size([100, 50], (64, 64)).numpy().tolist() == [64, 32]
    assert image_ops.fit_size([3, 7], (4, 4)).numpy().tolist() == [2, 4]
    assert image_ops.fit_size([1, 1000], (8, 8)).numpy().tolist() == [1, 8]  # at least one pixel
    assert image_ops.fit_size([0, 5], (10, 10)).numpy().tolist() == [2, 10]  # 0 counts as 1


def test_resize_pad_values_and_factors():
    image = tf.reshape(tf.range(3 * 7 * 1, dtype=tf.float32), (3, 7, 1))
    padded, factors = image_ops.resize_pad(image, (4, 4), pad_value=-1.0)
    np.testing.assert_allclose(factors.numpy(), [2 / 3, 4 / 7], rtol=1e-6)  # per axis, not one scale
    expected = tf.image.resize(image, (2, 4)).numpy()
    np.testing.assert_allclose(padded.numpy()[:2, :, 0], expected[..., 0])
    assert (padded.numpy()[2:] == -1).all()


def test_training_and_serving_map_boxes_alike():
    # Training: a box of the 3x7 original scaled by resize_pad's factors.
    element = {"images": tf.zeros((3, 7, 3)), "bounding_boxes": {"boxes": tf.constant([[0.0, 0.0, 3.5, 1.5]]),
                                                                 "labels": tf.constant([0])}}
    out = data.resize_pad(element, 4, 4, "xyxy")
    trained = out["bounding_boxes"]["boxes"].numpy()[0]  # xyxy in the 4x4 input
    np.testing.assert_allclose(trained, [0, 0, 3.5 * 4 / 7, 1.5 * 2 / 3], rtol=1e-6)

    # Serving: a model that predicts exactly that box gets it back, normalised, on the original.
    class Fixed:
        bounding_box_format = "xyxy"

        def __call__(self, images, training=False):
            b = tf.shape(images)[0]
            return {"boxes": tf.tile(tf.constant(trained, tf.float32)[None, None], [b, 1, 1]),
                    "scores": tf.ones((b, 1)), "labels": tf.zeros((b, 1), tf.int32),
                    "num_detections": tf.ones((b,), tf.int32)}

    served = _Serving(Fixed(), (4, 4)).serve_tensor(tf.zeros((1, 3, 7, 3), tf.uint8))
    # normalised [ymin, xmin, ymax, xmax] of the 3x7 original: (0, 0, 1.5/3, 3.5/7)
    np.testing.assert_allclose(served["detection_boxes"].numpy()[0, 0], [0, 0, 0.5, 0.5], rtol=1e-6)


def test_image_hw_is_the_one_size_parser():
    from keras_det import export
    from keras_det.models.config import remember

    assert image_ops.image_hw(96) == (96, 96)
    assert image_ops.image_hw([64], one_value_square=True) == (64, 64)  # a CLI flag's nargs="+"
    assert image_ops.image_hw((48, np.int64(80))) == (48, 80)
    for bad in (0, -3, (64, 0), (64, 64, 3), (64,), 64.0, True, (64.0, 64), "64", None, []):
        with pytest.raises(ValueError, match=r"^`image_size` must be one positive integer"):
            image_ops.image_hw(bad)
    with pytest.raises(ValueError, match=r"^--image-size must be .* got \[1, 2, 3\]"):
        image_ops.image_hw([1, 2, 3], "--image-size", one_value_square=True)

    # Every caller rejects the same value the same way.
    class Model:
        num_classes = 1

    with pytest.raises(ValueError, match="`image_size` must be"):
        remember(Model(), image_size=(64, 0))
    with pytest.raises(ValueError, match="`image_size` must be"):
        export.export_saved_model(None, "unused", image_size=(64, 64, 3))
    ds = data.load("shapes", "train", num_images=2, image_size=32)
    with pytest.raises(ValueError, match="`image_size` must be"):
        data.batch(ds, 2, image_size=(32, -1), bounding_box_format="xyxy")
    assert remember(Model(), image_size=[40, 50]).image_size == (40, 50)
