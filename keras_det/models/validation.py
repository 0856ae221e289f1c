"""The target checks every detector runs at its training boundary.

`check_targets` is called once per train / test step by
``Detector._ground_truth`` (``keras_det/models/base.py``), before any box is
converted or matched, so that a bad batch fails with a message naming the
check, the model and the offending values instead of a broadcasting error
deep inside a loss, or (worse) trains silently on wrong data.

Every check works on symbolic tensors (``fit`` runs ``train_step`` in a
``tf.function``): shapes known while tracing are checked in Python and raise
``ValueError``; everything else becomes a ``tf.debugging.Assert`` whose
failure raises ``tf.errors.InvalidArgumentError`` with the message
``"<Model>: bad training batch: check <name>: ..."`` followed by the offending
values. The returned boxes and labels carry control dependencies on every
assert, and so do the images (the forward pass updates BatchNorm's moving
statistics, so a rejected batch must not reach the backbone): no loss, gradient,
weight or statistics update
comes from a bad batch, and no later op fails first with a less readable error.

Checks (``B`` batch size, ``M`` boxes per image, ``C`` classes):

* ``images-rank``: ``images`` is ``[B, H, W, channels]``;
* ``images-finite``: no NaN / inf pixel (always an error: an image cannot be dropped);
* ``boxes-rank`` / ``labels-rank``: ``boxes [B, M, 4]``, ``labels [B, M]``;
* ``batch-size`` / ``boxes-per-image``: ``images``, ``boxes`` and ``labels``
  agree on ``B``, ``boxes`` and ``labels`` on ``M``;
* ``boxes-finite``: every coordinate of a non-padding row (``label >= 0``) is finite;
* ``labels-in-range [-1, C)``: ``-1`` is padding, ``0 .. C - 1`` object classes
  (``-5`` is not padding; ``C`` or more is not a class of the model).

With ``invalid_boxes="drop"`` the last two checks do not raise: the rows that
fail them become padding (label ``-1``, box zeros) and their number is
returned, for the model to report (``dropped_boxes`` in the ``fit`` logs).
"""

import tensorflow as tf

INVALID_BOXES = ("raise", "drop")

# How many offending values an error message shows.
SHOWN = 5


def check_invalid_boxes(value):
    """``value`` if it is one of `INVALID_BOXES`, else a ValueError naming it."""
    if value not in INVALID_BOXES:
        raise ValueError(f"`invalid_boxes` must be one of {INVALID_BOXES}, got {value!r}.")
    return value


def _static_dim(tensor, axis):
    shape = tensor.shape
    if shape.rank is None:
        return None
    return shape[axis]


def _check_rank(tensor, rank, what, model_name, layout):
    """Static rank check when the rank is known, else a graph assert (returned, or None)."""
    if tensor.shape.rank is not None:
        if tensor.shape.rank != rank:
            raise ValueError(
                f"{model_name}: bad training batch: check {what}-rank: `{what}` must be rank {rank} {layout}, "
                f"got shape {tuple(tensor.shape)}."
            )
        return None
    return tf.debugging.assert_rank(
        tensor, rank, message=f"{model_name}: bad training batch: check {what}-rank: `{what}` must be rank {rank} {layout}"
    )


def _check_same_dim(a, a_name, b, b_name, axis, check, model_name):
    """Static equality of ``a.shape[axis]`` and ``b.shape[axis]`` when both are known, else a graph assert."""
    da, db = _static_dim(a, axis), _static_dim(b, axis)
    message = f"{model_name}: bad training batch: check {check}: `{a_name}` and `{b_name}` differ in dimension {axis}"
    if da is not None and db is not None:
        if da != db:
            raise ValueError(f"{message}: {tuple(a.shape)} vs {tuple(b.shape)}.")
        return None
    return tf.debugging.assert_equal(tf.shape(a)[axis], tf.shape(b)[axis], message=message)


def _assert_none(bad, message, values, where):
    """A graph assert that no element of ``bad`` is set, showing a few offending ``values`` at ``where``.

    Args:
        bad: bool ``[B]`` or ``[B, M]``.
        values: ``[B, ...]`` or ``[B, M, ...]`` (one row of values per element of ``bad``).

    The data is strings and int32 only, so ``tf.debugging.Assert`` needs no
    ``tf.cond`` guard (which Grappler warns about in every ``fit``).
    """
    flat_bad = tf.reshape(bad, [-1])
    rows = tf.reshape(values, [tf.size(bad), -1])
    shown = tf.strings.as_string(tf.boolean_mask(rows, flat_bad)[:SHOWN])
    indices = tf.cast(tf.where(bad)[:SHOWN], tf.int32)
    count = tf.reduce_sum(tf.cast(flat_bad, tf.int32))
    return tf.debugging.Assert(
        tf.logical_not(tf.reduce_any(flat_bad)),
        [message, "offending values:", shown, f"at {where}:", indices, "count:", count],
        summarize=4 * SHOWN,
    )


def check_targets(images, boxes, labels, num_classes=None, model_name="Detector", invalid_boxes="raise"):
    """Checks one training batch of the data contract (see the module docstring).

    Args:
        images: ``[B, H, W, channels]`` pixels (any float or integer dtype).
        boxes: ``[B, M, 4]`` boxes in the model's ``bounding_box_format``
            (only finiteness is checked here: any format).
        labels: ``[B, M]`` integer labels, ``-1`` padding.
        num_classes: the model's number of object classes ``C``
            (``None``: the upper bound is not checked).
        model_name: names the model in the messages (e.g. ``"FasterRCNN"``).
        invalid_boxes: ``"raise"`` (default) or ``"drop"``: rows with a
            non-finite coordinate or a label outside ``[-1, C)`` become
            padding and are counted instead of raising.

    Returns:
        ``(images, boxes, labels, num_dropped)``: the inputs (labels as
        int32, boxes as float32; in drop mode the dropped rows have label
        ``-1`` and zero boxes) and an int32 scalar count of dropped rows
        (always 0 in raise mode).

    Raises:
        ValueError: a check failed on shapes known while tracing.
        tf.errors.InvalidArgumentError: a check failed at run time.
    """
    check_invalid_boxes(invalid_boxes)
    images = tf.convert_to_tensor(images)
    boxes = tf.convert_to_tensor(boxes)
    labels = tf.convert_to_tensor(labels)
    prefix = f"{model_name}: bad training batch: check"
    asserts = [
        _check_rank(images, 4, "images", model_name, "[B, H, W, channels]"),
        _check_rank(boxes, 3, "boxes", model_name, "[B, M, 4]"),
        _check_rank(labels, 2, "labels", model_name, "[B, M]"),
    ]
    coords = _static_dim(boxes, -1) if boxes.shape.rank is not None else None
    if coords is not None and coords != 4:
        raise ValueError(f"{prefix} boxes-rank: `boxes` must be [B, M, 4], got shape {tuple(boxes.shape)}.")
    if coords is None:
        asserts.append(tf.debugging.assert_equal(tf.shape(boxes)[-1], 4, message=f"{prefix} boxes-rank: `boxes` must be [B, M, 4]"))
    asserts += [
        _check_same_dim(images, "images", boxes, "boxes", 0, "batch-size", model_name),
        _check_same_dim(boxes, "boxes", labels, "labels", 0, "batch-size", model_name),
        _check_same_dim(boxes, "boxes", labels, "labels", 1, "boxes-per-image", model_name),
    ]
    asserts = [a for a in asserts if a is not None]
    if labels.dtype.is_floating:
        labels = tf.round(labels)
    labels = tf.cast(labels, tf.int32)
    boxes = tf.cast(boxes, tf.float32)
    with tf.control_dependencies(asserts):  # shapes first: the element-wise checks below need them
        if images.dtype.is_floating:
            not_finite = tf.cast(tf.logical_not(tf.math.is_finite(images)), tf.int32)
            per_image = tf.reduce_sum(not_finite, axis=[1, 2, 3])  # [B]
            asserts.append(_assert_none(
                per_image > 0,
                f"{prefix} images-finite: `images` has NaN or inf pixels (a bad image cannot be dropped; "
                "fix the data); values: NaN/inf pixels per image",
                per_image, "image [b]"))
        upper = f"{int(num_classes)}" if num_classes is not None else "inf"
        last = f"{int(num_classes) - 1}" if num_classes is not None else "..."
        bad_label = labels < -1
        if num_classes is not None:
            bad_label = bad_label | (labels >= int(num_classes))
        bad_box = tf.logical_not(tf.reduce_all(tf.math.is_finite(boxes), axis=-1)) & (labels >= 0)
        num_dropped = tf.zeros([], tf.int32)
        if invalid_boxes == "raise":
            asserts.append(_assert_none(
                bad_label,
                f"{prefix} labels-in-range [-1, {upper}): labels must be -1 (padding) or a class id 0..{last} "
                f"(the model has {upper} classes) (invalid_boxes=drop drops such rows)",
                labels, "[b, row]"))
            asserts.append(_assert_none(
                bad_box,
                f"{prefix} boxes-finite: a box (label >= 0) has a NaN or inf coordinate "
                "(invalid_boxes=drop drops such rows)",
                boxes, "[b, row]"))
        else:
            drop = bad_label | bad_box
            num_dropped = tf.reduce_sum(tf.cast(drop, tf.int32))
            labels = tf.where(drop, -1, labels)
            boxes = tf.where(drop[..., None], 0.0, boxes)
    # Everything waits for every check: the forward pass itself updates BatchNorm's moving
    # statistics (no gradient needed), so a rejected batch must not reach the backbone either;
    # and no loss, gradient or weight update is computed from it, and no later op fails first
    # with a less readable error. (Letting the backbone start before the box / label checks
    # saved no measurable time: see docs/data.md.)
    with tf.control_dependencies(asserts):
        return tf.identity(images), tf.identity(boxes), tf.identity(labels), tf.identity(num_dropped)
