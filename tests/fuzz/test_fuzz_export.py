"""Generated bad inputs for `keras_det.export.export_saved_model` and the SavedModels it writes (issue 14, export).

* ``rejected``: a bad ``image_size`` or a model that is not a keras_det
  detector raises ``ValueError`` naming the value / the model's type, before
  anything is written (no version directory is left behind);
* ``handled``: an empty batch on either signature returns empty outputs of
  the documented dtypes and ranks (``detection_boxes [0, K, 4]``, ``K`` as in
  a non-empty batch), with the SavedModel loaded by plain
  ``tf.saved_model.load`` (as TF Serving does, without keras_det).

Any other exception is a crash, no error where one was expected (or a
directory written for a rejected call) a silent pass.
"""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_det import models
from keras_det.export import export_saved_model

from .test_fuzz_training import BUILDERS, NUM_CLASSES, SIZE


@pytest.fixture(scope="module")
def ssd():
    keras.utils.set_random_seed(0)
    return BUILDERS["ssd"]()


@pytest.fixture(scope="module")
def exported(tmp_path_factory, ssd):
    """A SavedModel of a tiny SSD loaded with TensorFlow alone; for Mask R-CNN (masks output) the
    same serving functions in a ``tf.function`` (a second export would double this file's time)."""
    from keras_det.export import _Serving, check_detector

    path = export_saved_model(ssd, str(tmp_path_factory.mktemp("export") / "ssd"), image_size=(SIZE, SIZE))
    keras.utils.set_random_seed(0)
    mask_rcnn = BUILDERS["mask_rcnn"]()
    serving = _Serving(mask_rcnn, (SIZE, SIZE), check_detector(mask_rcnn, (SIZE, SIZE)))
    signatures = {
        "serving_default": tf.function(serving.serve_encoded, input_signature=[tf.TensorSpec([None], tf.string)]),
        "serving_tensor": tf.function(serving.serve_tensor, input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)]),
    }
    return {"ssd": tf.saved_model.load(path).signatures,
            "mask_rcnn": {k: (lambda f: lambda images: f(images))(f) for k, f in signatures.items()}}


# -- rejected before anything is written ----------------------------------------------------

BAD_SIZES = [
    ("zero", (0, 0)),
    ("zero-height", (0, SIZE)),
    ("negative", (-1, SIZE)),
    ("three-values", (SIZE, SIZE, 3)),
    ("one-value-tuple", (SIZE,)),
    ("empty", ()),
    ("float", (64.5, 64.0)),
    ("string", "64"),
    ("bool", (True, True)),
    ("nested", ((64, 64),)),
    ("negative-int", -64),
]


def _rejected(call, tmp_path, words):
    with pytest.raises(ValueError) as info:
        call(str(tmp_path / "out"))
    message = str(info.value)
    assert all(w in message for w in words), f"crash: unclear message {message!r} (expected {words})"
    assert not os.path.exists(tmp_path / "out"), "silent pass: a rejected export wrote a directory"
    return message


@pytest.mark.parametrize("id,size", BAD_SIZES, ids=[c[0] for c in BAD_SIZES])
def test_bad_image_size_is_rejected(id, size, ssd, tmp_path):
    _rejected(lambda d: export_saved_model(ssd, d, image_size=size), tmp_path, ("`image_size`", repr(size)))


def test_no_image_size_anywhere_is_rejected(tmp_path):
    model = BUILDERS["faster_rcnn"]()  # two-stage models take any size: they remember none until trained
    _rejected(lambda d: export_saved_model(model, d), tmp_path, ("`image_size`", "required"))


def test_image_size_the_model_was_not_built_for(ssd, tmp_path):
    _rejected(lambda d: export_saved_model(ssd, d, image_size=(96, 96)), tmp_path, ("SSD", "was built for 64x64", "96x96"))


NOT_DETECTORS = [
    ("sequential", lambda: keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.GlobalAveragePooling2D(),
                                             keras.layers.Dense(3)]), ("Sequential", "tensor of shape (1, 3)")),
    ("sequential-unbuilt", lambda: keras.Sequential([keras.layers.Dense(3)]), ("Sequential", "prediction dict")),
    ("segmenter", lambda: models.FCNSegmenter(NUM_CLASSES, backbone="tiny"), ("FCNSegmenter", "prediction dict")),
    ("transfer-classifier", lambda: models.TransferClassifier(NUM_CLASSES, backbone="tiny", input_shape=(SIZE, SIZE, 3)),
     ("TransferClassifier", "prediction dict")),
    ("dict-without-scores", lambda: _dict_model(), ("Functional", "'boxes'", "['boxes', 'labels']")),
    ("wrong-input-size", lambda: keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten(), keras.layers.Dense(2)]),
     ("Sequential", "cannot run on a 64x64 image batch")),
    ("not-a-model", lambda: object(), ("keras_det detector", "object")),
]


def _dict_model():
    x = keras.Input((SIZE, SIZE, 3))
    y = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(x, {"boxes": keras.layers.Dense(4)(y), "labels": keras.layers.Dense(1)(y)})


@pytest.mark.parametrize("id,factory,words", NOT_DETECTORS, ids=[c[0] for c in NOT_DETECTORS])
def test_a_model_that_is_not_a_detector_is_rejected(id, factory, words, tmp_path):
    model = factory()
    _rejected(lambda d: export_saved_model(model, d, image_size=(SIZE, SIZE)), tmp_path, words)


# -- handled: empty batches ---------------------------------------------------------------------

SIGNATURES = [
    ("serving_default", lambda n: tf.constant([tf.io.encode_png(np.full((40, 50, 3), 90, np.uint8)).numpy()] * n, tf.string)),
    ("serving_tensor", lambda n: tf.fill([n, 40, 50, 3], tf.constant(90, tf.uint8))),
]


@pytest.mark.parametrize("name", ("ssd", "mask_rcnn"))
@pytest.mark.parametrize("signature,inputs", SIGNATURES, ids=[s[0] for s in SIGNATURES])
def test_empty_batch_returns_empty_outputs(exported, name, signature, inputs):
    fn = exported[name][signature]
    reference = fn(images=inputs(2))
    empty = fn(images=inputs(0))
    assert set(empty) == set(reference)
    for key, value in reference.items():
        assert empty[key].dtype == value.dtype and empty[key].shape == (0,) + tuple(value.shape[1:]), (key, empty[key].shape)
    k = reference["detection_scores"].shape[1]
    assert empty["detection_boxes"].shape == (0, k, 4) and empty["num_detections"].shape == (0,)
    assert np.all(np.isfinite(reference["detection_boxes"].numpy()))


@pytest.mark.parametrize("signature,inputs", SIGNATURES, ids=[s[0] for s in SIGNATURES])
def test_empty_batch_signatures_keep_static_ranks(exported, signature, inputs):
    """The signatures' declared outputs (what TF Serving sees) keep rank and K after the empty-batch branch."""
    outputs = exported["ssd"][signature].structured_outputs
    assert outputs["detection_boxes"].shape.as_list() == [None, 5, 4]
    assert outputs["num_detections"].shape.as_list() == [None]
