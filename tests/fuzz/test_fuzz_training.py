"""Generated bad training batches thrown at every detector that ``fit`` trains (issue 14, model boundary).

Each case breaks one thing in a valid tiny batch and declares its outcome:

* ``error``: the train step raises ``ValueError`` (a shape known while
  tracing) or ``tf.errors.InvalidArgumentError`` (a run-time check) whose
  message names the model and the check (``keras_det.models.validation``),
  and no weight changed;
* ``handled``: the step runs, its loss and every weight stay finite and, in
  ``invalid_boxes="drop"`` mode, ``dropped_boxes`` counts the dropped rows.

Any other exception, or an error without the expected words, is a crash; no
error where one was expected, or a NaN loss / weight, is a silent pass: both
fail the test. Steps run in graph mode, as in ``fit``: one ``tf.function`` of
``train_step`` per model, traced once with ``None`` batch / box dimensions
(so the size checks are the run-time ones); a few cases go through ``fit``
itself (and a padded ``tf.data`` batch).
"""

import dataclasses
from typing import Callable

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_det import models, presets
from keras_det.models.validation import check_targets
from tests.models.synthetic import rectangles

SIZE = 64
NUM_CLASSES = 2
# The detectors as the "<name>_micro" presets (keras_det.presets) build them.
BUILDERS = {
    name: (lambda preset: lambda **kw: presets.build(preset, NUM_CLASSES, **kw))(f"{name}_micro")
    for name in ("classify_localize", "sliding_window", "rcnn", "fast_rcnn", "faster_rcnn", "mask_rcnn", "ssd",
                 "yolo_v1", "yolo")
}
MODELS = tuple(BUILDERS)
NEEDS_PROPOSALS = ("rcnn", "fast_rcnn")


def good_batch(name):
    """A valid batch of 2 images (3 box rows each, some padding) for model ``name``."""
    batch = rectangles(num_images=2, size=SIZE, max_boxes=3, num_classes=NUM_CLASSES, seed=5)
    batch["bounding_boxes"]["labels"][:, 0] = [0, 1]  # row 0 is an object in both images
    boxes = batch["bounding_boxes"]["boxes"]
    boxes[:, 0] = [[4, 4, 30, 30], [10, 8, 50, 40]]
    if name in NEEDS_PROPOSALS:
        rng = np.random.default_rng(1)
        xy = rng.uniform(0, SIZE - 24, (2, 8, 2))
        wh = rng.uniform(8, 24, (2, 8, 2))
        batch["proposals"] = np.concatenate([xy, xy + wh], -1).astype(np.float32)
    if name == "mask_rcnn":
        masks = np.zeros((2, 3, SIZE, SIZE), np.uint8)
        for i in range(2):
            for j in range(3):
                x1, y1, x2, y2 = boxes[i, j].astype(int)
                masks[i, j, y1:y2, x1:x2] = 1
        batch["masks"] = masks
    return batch


def _signature(batch, dynamic_size=False):
    """Input signature of a batch with ``None`` batch and box-row dimensions (and image size)."""

    def spec(value, key):
        shape = [None] + list(np.shape(value)[1:])
        if key in ("boxes", "labels", "proposals", "masks"):
            shape[1] = None
        if key == "images" and dynamic_size:
            shape[1] = shape[2] = None
        return tf.TensorSpec(shape, tf.as_dtype(np.asarray(value).dtype))

    return {k: ({kk: spec(vv, kk) for kk, vv in v.items()} if isinstance(v, dict) else spec(v, k)) for k, v in batch.items()}


def _build(name, **kwargs):
    keras.utils.set_random_seed(0)
    model = BUILDERS[name](**kwargs)
    batch = good_batch(name)
    x = {k: v for k, v in batch.items() if k in ("images", "proposals")}
    model(x if len(x) > 1 else batch["images"])
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    return model


class Harness:
    """One model, its graph-mode train step (traced once, ``None`` dimensions) and the outcome checks."""

    def __init__(self, name, **kwargs):
        self.name = name
        self.model = _build(name, **kwargs)
        self.step = tf.function(self.model.train_step, input_signature=[_signature(good_batch(name))])

    def weights(self):
        """Trainable weights and BatchNorm's moving statistics (which the forward pass updates)."""
        moving = [v for v in self.model.non_trainable_variables if "moving" in v.path]
        return [v.numpy().copy() for v in self.model.trainable_variables + moving]

    def run(self, batch, step=None):
        """Runs ``step`` (default the traced train step) on ``batch``: ``("error", message)`` or ``("handled", logs)``."""
        step = step or self.step
        for tracker in self.model.metrics:
            tracker.reset_state()
        before = self.weights()
        try:
            logs = step(batch)
        except (ValueError, tf.errors.InvalidArgumentError) as error:
            changed = [i for i, (a, b) in enumerate(zip(before, self.weights())) if not np.array_equal(a, b)]
            assert not changed, f"{self.name}: the failed step still changed {len(changed)} weights"
            return "error", str(error)
        logs = {k: float(v) for k, v in logs.items()}
        assert np.isfinite(logs["loss"]), f"silent pass: {self.name} loss {logs['loss']} on a handled batch"
        bad = [v.path for v in self.model.variables if v.dtype.startswith("float") and not np.all(np.isfinite(v.numpy()))]
        assert not bad, f"silent pass: {self.name} weights became non-finite: {bad[:3]}"
        return "handled", logs


_HARNESSES = {}


def harness(name, **kwargs):
    key = (name, tuple(sorted(kwargs.items())))
    if key not in _HARNESSES:
        _HARNESSES[key] = Harness(name, **kwargs)
    return _HARNESSES[key]


# -- cases ------------------------------------------------------------------------------


def _set(path, value):
    """A mutation setting ``batch[...path] = value`` (numpy indexing on boxes / labels / images)."""

    def mutate(batch):
        key, index = path
        target = batch["bounding_boxes"][key] if key in ("boxes", "labels") else batch[key]
        target[index] = value
        return batch

    return mutate


def _longer_labels(batch):
    labels = batch["bounding_boxes"]["labels"]
    batch["bounding_boxes"]["labels"] = np.concatenate([labels, np.full((2, 1), -1, labels.dtype)], axis=1)
    return batch


def _shorter_labels(batch):
    batch["bounding_boxes"]["labels"] = batch["bounding_boxes"]["labels"][:, :2].copy()
    return batch


def _fewer_box_images(batch):
    batch["bounding_boxes"]["boxes"] = batch["bounding_boxes"]["boxes"][:1].copy()
    batch["bounding_boxes"]["labels"] = batch["bounding_boxes"]["labels"][:1].copy()
    if "masks" in batch:
        batch["masks"] = batch["masks"][:1].copy()
    if "proposals" in batch:
        batch["proposals"] = batch["proposals"][:1].copy()
    return batch


@dataclasses.dataclass
class Case:
    id: str
    mutate: Callable
    outcome: str  # "error" or "handled"
    words: tuple = ()  # error: words the message must contain (besides the model name)


CASES = [
    Case("valid", lambda b: b, "handled"),
    Case("nan-box-in-padding-row", _set(("boxes", (0, 2)), np.nan), "handled"),  # label -1: ignored
    Case("nan-box", _set(("boxes", (0, 0, 1)), np.nan), "error", ("boxes-finite",)),
    Case("inf-box", _set(("boxes", (1, 0, 2)), np.inf), "error", ("boxes-finite",)),
    Case("nan-pixels", _set(("images", (1, 5, 5, 0)), np.nan), "error", ("images-finite",)),
    Case("label-num-classes", _set(("labels", (0, 0)), NUM_CLASSES), "error", ("labels-in-range [-1, 2)", "2")),
    Case("label-minus-5", _set(("labels", (1, 0)), -5), "error", ("labels-in-range [-1, 2)", "-5")),
    Case("labels-longer-than-boxes", _longer_labels, "error", ("boxes-per-image",)),
]
# Shape cases, once per model family (each is a run-time check of the same code).
SHAPE_CASES = [
    Case("labels-shorter-than-boxes", _shorter_labels, "error", ("boxes-per-image",)),
    Case("boxes-for-fewer-images", _fewer_box_images, "error", ("batch-size",)),
]


def _check(h, case, result):
    kind, detail = result
    if case.outcome == "error":
        assert kind == "error", f"silent pass: {h.name} accepted case {case.id!r} (logs {detail})"
        for word in (type(h.model).__name__, "bad training batch", *case.words):
            assert word in detail, f"crash: {h.name} {case.id!r} error does not name {word!r}: {detail[-600:]}"
    else:
        assert kind == "handled", f"crash: {h.name} {case.id!r} raised: {detail[-600:]}"


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_batch_every_detector(name, case):
    h = harness(name)
    _check(h, case, h.run(case.mutate(good_batch(name))))


@pytest.mark.parametrize("name", ("faster_rcnn", "ssd"))
@pytest.mark.parametrize("case", SHAPE_CASES, ids=lambda c: c.id)
def test_bad_shapes(name, case):
    h = harness(name)
    _check(h, case, h.run(case.mutate(good_batch(name))))


@pytest.mark.parametrize(
    "id,mutate,words",
    [
        ("images-rank-3", lambda b: {**b, "images": b["images"][0]}, ("images-rank", "rank 4")),
        ("boxes-rank-2", lambda b: {**b, "bounding_boxes": {**b["bounding_boxes"], "boxes": b["bounding_boxes"]["boxes"][0]}},
         ("boxes-rank",)),
        ("labels-rank-3", lambda b: {**b, "bounding_boxes": {**b["bounding_boxes"], "labels": b["bounding_boxes"]["labels"][..., None]}},
         ("labels-rank",)),
        ("boxes-5-coordinates", lambda b: {**b, "bounding_boxes": {**b["bounding_boxes"], "boxes": np.pad(b["bounding_boxes"]["boxes"], ((0, 0), (0, 0), (0, 1)))}},
         ("boxes-rank", "[B, M, 4]")),
    ],
)
def test_wrong_ranks_fail_while_tracing(id, mutate, words):
    """Static shapes: a ValueError naming the check, from the train step as ``fit`` traces it."""
    h = harness("faster_rcnn")
    kind, message = h.run(mutate(good_batch("faster_rcnn")), step=tf.function(h.model.train_step))
    assert kind == "error" and "FasterRCNN" in message and all(w in message for w in words), message


# -- drop mode --------------------------------------------------------------------------


def _three_bad_rows(batch):
    batch["bounding_boxes"]["boxes"][0, 0, 0] = np.nan
    batch["bounding_boxes"]["labels"][1, 0] = NUM_CLASSES + 3
    batch["bounding_boxes"]["labels"][1, 1] = -7
    batch["bounding_boxes"]["boxes"][1, 2] = np.nan  # padding row with NaN: not counted
    batch["bounding_boxes"]["labels"][1, 2] = -1
    return batch


@pytest.mark.parametrize("name", ("faster_rcnn", "ssd"))
def test_drop_mode_counts_dropped_rows(name):
    h = harness(name, invalid_boxes="drop")
    kind, logs = h.run(_three_bad_rows(good_batch(name)))
    assert kind == "handled" and logs["dropped_boxes"] == 3.0, logs
    kind, logs = h.run(good_batch(name))
    assert kind == "handled" and logs["dropped_boxes"] == 0.0, logs


@pytest.mark.parametrize("name", ("faster_rcnn", "ssd"))
def test_drop_mode_still_rejects_nan_pixels(name):
    h = harness(name, invalid_boxes="drop")
    _check(h, Case("nan-pixels", None, "error", ("images-finite",)), h.run(_set(("images", (0, 1, 2, 1)), np.inf)(good_batch(name))))


def test_drop_mode_in_fit_sums_over_the_epoch_and_is_saved():
    model = _build("ssd", invalid_boxes="drop")
    batch = _three_bad_rows(good_batch("ssd"))
    history = model.fit(tf.data.Dataset.from_tensors(batch).repeat(), steps_per_epoch=2, epochs=1, verbose=0)
    assert history.history["dropped_boxes"] == [6.0] and np.isfinite(history.history["loss"][0])
    assert model.get_config()["invalid_boxes"] == "drop"
    assert models.SSD.from_config(model.get_config()).invalid_boxes == "drop"
    assert harness("ssd").model.get_config()["invalid_boxes"] == "raise"
    assert "dropped_boxes" not in [m.name for m in harness("ssd").model.metrics]  # raise mode: no extra metric


def test_invalid_boxes_value_is_checked():
    with pytest.raises(ValueError, match="invalid_boxes"):
        models.SSD(NUM_CLASSES, backbone="tiny", image_size=(SIZE, SIZE), invalid_boxes="ignore")


# -- through fit ------------------------------------------------------------------------


def test_fit_on_padded_batches_checks_at_run_time():
    """``fit`` on tf.data padded batches (box rows unknown while tracing): good data trains, bad data
    fails the run-time checks with the model, the check and the offending value in the message."""
    model = _build("ssd")
    batch = good_batch("ssd")

    def padded(b):
        return tf.data.Dataset.from_tensor_slices(b).padded_batch(2)

    logs = model.fit(padded(batch), epochs=1, verbose=0).history
    assert np.isfinite(logs["loss"][0])
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        model.fit(padded(_set(("labels", (0, 0)), 9)(good_batch("ssd"))), epochs=1, verbose=0)
    message = str(info.value)
    assert "SSD: bad training batch: check labels-in-range [-1, 2)" in message and "[9]" in message, message
    with pytest.raises(tf.errors.InvalidArgumentError, match="SSD: bad training batch: check boxes-finite"):
        model.fit(padded(_set(("boxes", (1, 0, 3)), -np.inf)(good_batch("ssd"))), epochs=1, verbose=0)


# -- image size of SSD / YOLO with unknown static sizes -----------------------------------


def test_wrong_image_size_in_a_train_step_with_dynamic_shapes():
    model = harness("ssd").model
    batch = good_batch("ssd")
    step = tf.function(model.train_step, input_signature=[_signature(batch, dynamic_size=True)])
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        step(dict(batch, images=batch["images"][:, :48, :40].copy()))
    message = str(info.value)
    assert "SSD was built for 64x64 images" in message and "[48 40]" in message, message


@pytest.mark.parametrize("name", ("ssd", "yolo", "yolo_v1"))
def test_wrong_image_size_in_a_call_with_dynamic_shapes(name):
    model = harness(name).model
    kind = type(model).__name__
    images = good_batch(name)["images"]
    call = tf.function(lambda x: model(x), input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"{kind} was built for 64x64 images.*128 128"):
        call(np.zeros((1, 128, 128, 3), np.float32))
    assert call(images)["boxes"].shape[0] == 2  # the right size passes the same graph
    with pytest.raises(ValueError, match="was built for 64x64 images, got 48x40"):  # static sizes: while tracing
        model(images[:, :48, :40])


# -- CLI flag -----------------------------------------------------------------------------


def test_cli_invalid_boxes_flag(capsys):
    from keras_det import cli

    args = cli.build_parser().parse_args(["train", "--invalid-boxes", "drop"])
    assert args.invalid_boxes == "drop"
    assert cli.build_parser().parse_args(["train"]).invalid_boxes == "error"
    assert cli.main(["train", "--invalid-boxes", "skip"]) == 2
    assert "--invalid-boxes" in capsys.readouterr().err
    model = cli.build_detector("ssd", 2, "tiny", SIZE, invalid_boxes="drop")
    assert model.invalid_boxes == "drop" and "dropped_boxes" in [m.name for m in model.metrics]


def test_cli_one_line_shows_the_failed_check():
    from keras_det import cli

    h = harness("ssd")
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        h.step(_set(("labels", (0, 0)), 5)(good_batch("ssd")))
    line = cli._one_line(info.value)
    assert line.startswith("assertion failed: [SSD: bad training batch: check labels-in-range [-1, 2)"), line


# -- check_targets on hand-made inputs ----------------------------------------------------

IMAGES = np.zeros((2, 4, 4, 3), np.float32)
BOXES = np.array([[[0, 0, 2, 2], [1, 1, 3, 3]], [[0, 0, 1, 1], [0, 0, 0, 0]]], np.float32)
LABELS = np.array([[0, 2], [1, -1]], np.int32)


def _graph(fn):
    spec = [tf.TensorSpec([None, None, None, 3], tf.float32), tf.TensorSpec([None, None, 4], tf.float32),
            tf.TensorSpec([None, None], tf.int32)]
    return tf.function(fn, input_signature=spec)


@pytest.mark.parametrize("mode", ("eager", "graph"))
def test_check_targets_passes_valid_input_through(mode):
    fn = lambda i, b, l: check_targets(i, b, l, 3, "M")  # noqa: E731
    fn = _graph(fn) if mode == "graph" else fn
    images, boxes, labels, dropped = fn(IMAGES, BOXES, LABELS)
    np.testing.assert_array_equal(boxes, BOXES)
    np.testing.assert_array_equal(labels, LABELS)
    assert labels.dtype == tf.int32 and int(dropped) == 0


@pytest.mark.parametrize("mode", ("eager", "graph"))
@pytest.mark.parametrize(
    "id,images,boxes,labels,words",
    [
        ("label-3", IMAGES, BOXES, np.array([[0, 3], [1, -1]], np.int32), ("labels-in-range [-1, 3)", "3")),
        ("label-minus-2", IMAGES, BOXES, np.array([[0, 2], [-2, -1]], np.int32), ("labels-in-range [-1, 3)", "-2")),
        ("nan-box", IMAGES, np.where(np.arange(2)[None, :, None] == 1, np.nan, BOXES).astype(np.float32), LABELS,
         ("boxes-finite", "nan")),
        ("inf-pixel", np.where(np.arange(4)[None, :, None, None] == 2, np.inf, IMAGES).astype(np.float32), BOXES, LABELS,
         ("images-finite",)),
        ("more-labels", IMAGES, BOXES, np.array([[0, 2, -1], [1, -1, -1]], np.int32), ("boxes-per-image",)),
        ("more-images", np.zeros((3, 4, 4, 3), np.float32), BOXES, LABELS, ("batch-size",)),
    ],
)
def test_check_targets_rejects(mode, id, images, boxes, labels, words):
    fn = lambda i, b, l: check_targets(i, b, l, 3, "MyModel")  # noqa: E731
    fn = _graph(fn) if mode == "graph" else fn
    with pytest.raises((ValueError, tf.errors.InvalidArgumentError)) as info:
        fn(images, boxes, labels)
    message = str(info.value)
    assert "MyModel: bad training batch: check" in message and all(w in message for w in words), message


@pytest.mark.parametrize("mode", ("eager", "graph"))
def test_check_targets_drop_mode(mode):
    boxes = BOXES.copy()
    boxes[0, 0, 2] = np.inf
    boxes[1, 1] = np.nan  # padding: kept as is, not counted
    labels = np.array([[0, 5], [-3, -1]], np.int32)
    fn = lambda i, b, l: check_targets(i, b, l, 3, "M", invalid_boxes="drop")  # noqa: E731
    fn = _graph(fn) if mode == "graph" else fn
    _, out_boxes, out_labels, dropped = fn(IMAGES, boxes, labels)
    assert int(dropped) == 3
    np.testing.assert_array_equal(out_labels, [[-1, -1], [-1, -1]])
    np.testing.assert_array_equal(out_boxes[0], np.zeros((2, 4)))


def test_check_targets_static_shapes_and_unknown_classes():
    with pytest.raises(ValueError, match="images-rank.*rank 4"):
        check_targets(IMAGES[0], BOXES, LABELS, 3, "M")
    with pytest.raises(ValueError, match="labels-rank"):
        check_targets(IMAGES, BOXES, LABELS[0], 3, "M")
    with pytest.raises(ValueError, match="`invalid_boxes`"):
        check_targets(IMAGES, BOXES, LABELS, 3, "M", invalid_boxes="skip")
    # No num_classes: only the lower bound is checked; uint8 images need no finiteness check.
    _, _, labels, _ = check_targets(IMAGES.astype(np.uint8), BOXES, np.array([[0, 99], [1, -1]]), None, "M")
    assert labels.numpy()[0, 1] == 99
    empty = check_targets(IMAGES, np.zeros((2, 0, 4), np.float32), np.zeros((2, 0), np.int32), 3, "M")
    assert empty[1].shape == (2, 0, 4) and int(empty[3]) == 0
