"""Non-maximum suppression: plain, per-class and padded (SavedModel-friendly).

All three functions return *indices* into the input boxes, in descending score
order, and agree exactly with torchvision on the same input:

* ``non_max_suppression`` == ``torchvision.ops.nms``
* ``batched_nms`` == ``torchvision.ops.batched_nms``
* ``padded_nms`` == either of them per image, padded to a static length.

Boxes are absolute ``yxyx`` = ``[ymin, xmin, ymax, xmax]`` unless a
``bounding_box_format`` argument says otherwise (torchvision takes ``xyxy``:
the same boxes with the coordinates permuted).

Semantics (shared by the three functions, all tested against torchvision
0.29's CPU kernels, see ``tests/ops/test_nms.py``):

* Order: boxes are visited by descending score; equal scores are visited in
  ascending index order (torchvision sorts with a stable sort). The output is
  in visiting order.
* Suppression: a box is dropped when its IoU with an already kept box is
  *strictly* greater than ``iou_threshold``; IoU exactly equal to the
  threshold keeps the box.
* Arithmetic: IoU is computed in float32 (boxes are cast to float32) with
  torchvision's formula ``inter / (area_i + area_j - inter)`` and no ``+1``;
  the comparison is done as torchvision does it, against the threshold as a
  float64 number (so ``0.3``, which is not a float32 number, behaves like
  torchvision's double ``0.3``, not like ``float32(0.3)``).
* Zero-area and inverted boxes (``ymax < ymin`` or ``xmax < xmin``) have IoU
  0 with everything: they are never suppressed and never suppress (this is
  what torchvision's kernel computes for them; TensorFlow's own kernel would
  swap the corners of an inverted box instead, so they are made empty first).
* ``score_threshold``: boxes with ``score <= score_threshold`` are removed
  before suppression (torchvision's detection models filter with
  ``scores > thresh`` before calling NMS). The default ``-inf`` removes
  nothing, so boxes whose score is ``-inf`` are kept, like torchvision.
* NaN in ``scores`` or ``boxes`` is an error (torchvision would sort a NaN
  score first, TensorFlow's kernel would silently drop it): ``ValueError``
  in eager mode, ``tf.errors.InvalidArgumentError`` inside a ``tf.function``.
* ``iou_threshold`` must lie in ``[0, 1]`` (a TensorFlow kernel constraint;
  torchvision accepts any number).

The greedy suppression itself is TensorFlow's ``NonMaxSuppressionV4`` kernel,
fed with boxes already sorted by a stable sort and strictly decreasing
rank scores, so that its own ordering (and its handling of ``-inf`` scores
and score thresholds) cannot differ from torchvision's.
"""

import math

import numpy as np
import tensorflow as tf

from keras_det.ops import boxes as box_ops

# torchvision.ops.batched_nms switches from the coordinate-offset trick to a
# per-class loop when ``boxes.numel() > 4000`` on CPU, i.e. above 1000 boxes.
TORCHVISION_PER_CLASS_MIN_BOXES = 1001

_METHODS = ("auto", "offset", "per_class")


# --------------------------------------------------------------------------
# Argument checking.
# --------------------------------------------------------------------------


def _check_iou_threshold(iou_threshold):
    if isinstance(iou_threshold, (int, float, np.floating, np.integer)):
        value = float(iou_threshold)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"`iou_threshold` must be in [0, 1], got {iou_threshold!r}.")


def _check_max_output_size(max_output_size, required_static=False):
    if max_output_size is None:
        if required_static:
            raise ValueError("`max_output_size` must be a Python int for padded_nms, got None.")
        return
    if isinstance(max_output_size, (int, np.integer)) and not isinstance(max_output_size, bool):
        if max_output_size < 0:
            raise ValueError(f"`max_output_size` must be >= 0, got {max_output_size!r}.")
    elif required_static:
        raise ValueError(
            "`max_output_size` must be a Python int (it is the static output length), "
            f"got {max_output_size!r}."
        )


def _check_method(method):
    if method not in _METHODS:
        raise ValueError(f"`method`={method!r} is not one of {', '.join(map(repr, _METHODS))}.")


def _to_yxyx(boxes, bounding_box_format):
    fmt = box_ops.check_format(bounding_box_format)
    if fmt == "yxyx":
        return boxes
    # Relative formats: IoU is invariant to a per-axis scale, so treat the
    # image as 1x1 (multiplying by 1.0 is exact).
    return box_ops.convert_format(boxes, fmt, "yxyx", image_shape=(1.0, 1.0))


def _prepare(boxes, scores, class_ids, bounding_box_format, batched):
    """Converts and shape-checks the inputs; returns float32 yxyx boxes."""
    rank = 3 if batched else 2
    boxes_shape = "[B, N, 4]" if batched else "[N, 4]"
    scores_shape = "[B, N]" if batched else "[N]"
    boxes = tf.convert_to_tensor(boxes)
    if not (boxes.dtype.is_floating or boxes.dtype.is_integer):
        raise ValueError(f"`boxes` must be a numeric tensor, got dtype {boxes.dtype.name}.")
    if boxes.shape.rank is not None and (
        boxes.shape.rank != rank or boxes.shape[-1] not in (None, 4)
    ):
        raise ValueError(f"`boxes` must have shape {boxes_shape}, got shape {tuple(boxes.shape)}.")
    scores = tf.convert_to_tensor(scores)
    if not (scores.dtype.is_floating or scores.dtype.is_integer):
        raise ValueError(f"`scores` must be a numeric tensor, got dtype {scores.dtype.name}.")
    if scores.shape.rank is not None and scores.shape.rank != rank - 1:
        raise ValueError(
            f"`scores` must have shape {scores_shape}, got shape {tuple(scores.shape)}."
        )
    if boxes.shape.rank is not None and scores.shape.rank is not None:
        for axis, name in enumerate(("B", "N") if batched else ("N",)):
            nb, ns = boxes.shape[axis], scores.shape[axis]
            if nb is not None and ns is not None and nb != ns:
                raise ValueError(
                    f"`boxes` and `scores` disagree on {name}: `boxes` has shape "
                    f"{tuple(boxes.shape)} but `scores` has shape {tuple(scores.shape)}."
                )
    if class_ids is not None:
        class_ids = tf.convert_to_tensor(class_ids)
        if not class_ids.dtype.is_integer:
            raise ValueError(
                f"`class_ids` must be an integer tensor, got dtype {class_ids.dtype.name}."
            )
        if class_ids.shape.rank is not None and class_ids.shape.rank != rank - 1:
            raise ValueError(
                f"`class_ids` must have shape {scores_shape}, got shape {tuple(class_ids.shape)}."
            )
        if class_ids.shape.rank is not None and scores.shape.rank is not None:
            if not class_ids.shape.is_compatible_with(scores.shape):
                raise ValueError(
                    f"`class_ids` must have the shape of `scores` {tuple(scores.shape)}, "
                    f"got shape {tuple(class_ids.shape)}."
                )
    boxes = tf.cast(_to_yxyx(tf.cast(boxes, tf.float32), bounding_box_format), tf.float32)

    # Runtime checks: shapes unknown at trace time, and NaN.
    bad_nan = tf.logical_or(
        tf.reduce_any(tf.math.is_nan(tf.cast(scores, tf.float64)))
        if scores.dtype.is_floating
        else tf.constant(False),
        tf.reduce_any(tf.math.is_nan(boxes)),
    )
    if tf.executing_eagerly():
        if boxes.shape[:-1] != scores.shape:
            raise ValueError(
                f"`boxes` {boxes_shape} and `scores` {scores_shape} disagree: shapes "
                f"{tuple(boxes.shape)} and {tuple(scores.shape)}."
            )
        if class_ids is not None and class_ids.shape != scores.shape:
            raise ValueError(
                f"`class_ids` must have the shape of `scores` {tuple(scores.shape)}, "
                f"got shape {tuple(class_ids.shape)}."
            )
        if bool(bad_nan):
            raise ValueError("`boxes` or `scores` contains NaN; NMS is undefined for NaN.")
        return boxes, scores, class_ids
    checks = [
        tf.debugging.assert_equal(
            tf.shape(boxes)[:-1],
            tf.shape(scores),
            message=f"`boxes` {boxes_shape} and `scores` {scores_shape} disagree in shape",
        ),
        tf.debugging.Assert(
            tf.logical_not(bad_nan),
            ["`boxes` or `scores` contains NaN; NMS is undefined for NaN."],
        ),
    ]
    if class_ids is not None:
        checks.append(
            tf.debugging.assert_equal(
                tf.shape(class_ids),
                tf.shape(scores),
                message=f"`class_ids` must have the shape of `scores` {scores_shape}",
            )
        )
    with tf.control_dependencies(checks):
        boxes = tf.identity(boxes)
    return boxes, scores, class_ids


# --------------------------------------------------------------------------
# Exact single-class core.
# --------------------------------------------------------------------------


def _float32_threshold(iou_threshold):
    """The float32 ``t32`` with ``iou > t32  <=>  float64(iou) > iou_threshold``.

    torchvision compares a float32 IoU with a C++ ``double`` threshold. That
    comparison equals a float32 comparison against the largest float32 not
    above the threshold (``float32(0.3)`` rounds *up*, so it is stepped down
    one ulp).
    """
    if isinstance(iou_threshold, (int, float, np.floating, np.integer)):
        value = float(iou_threshold)
        t32 = np.float32(value)
        if float(t32) > value:
            t32 = np.nextafter(t32, np.float32(-np.inf))
        return tf.constant(t32, tf.float32)
    t = tf.convert_to_tensor(iou_threshold)
    if t.dtype == tf.float32:
        return t
    t64 = tf.cast(t, tf.float64)
    t32 = tf.cast(t64, tf.float32)
    down = tf.math.nextafter(t32, tf.constant(-np.inf, tf.float32))
    return tf.where(tf.cast(t32, tf.float64) > t64, down, t32)


def _empty_inverted(boxes):
    """Collapses inverted ``yxyx`` boxes to a point so their IoU is 0."""
    # Slices, not tf.unstack: TFLite cannot unstack an empty tensor (a class
    # without candidates).
    ymin, xmin, ymax, xmax = boxes[..., 0], boxes[..., 1], boxes[..., 2], boxes[..., 3]
    inverted = tf.logical_or(ymax < ymin, xmax < xmin)
    point = tf.stack([ymin, xmin, ymin, xmin], axis=-1)
    return tf.where(inverted[..., None], point, boxes)


def _keep_mask(scores, score_threshold):
    """``scores > score_threshold``; everything when the threshold is -inf."""
    if score_threshold is None or (
        isinstance(score_threshold, (int, float, np.floating)) and score_threshold == -math.inf
    ):
        return None
    thr = tf.cast(score_threshold, scores.dtype) if scores.dtype.is_floating else tf.cast(
        score_threshold, tf.float64
    )
    values = scores if scores.dtype.is_floating else tf.cast(scores, tf.float64)
    return values > thr


def _stable_descending(scores):
    """Indices sorting ``scores`` descending, ties in ascending index order."""
    # tf.argsort(DESCENDING) is top_k, whose ties come out lower index first.
    return tf.argsort(scores, direction="DESCENDING", stable=True)


def _nms_core(boxes, scores, t32, max_output_size, valid=None, pad_to=None):
    """Greedy NMS with torchvision's order and arithmetic.

    Args:
        boxes: float32 ``[N, 4]`` yxyx, NaN-free.
        scores: ``[N]`` any real dtype.
        t32: float32 scalar threshold from ``_float32_threshold``.
        max_output_size: int32 scalar (or Python int).
        valid: optional bool ``[N]``; False rows are ignored.
        pad_to: Python int; if given, returns ``[pad_to]`` padded with -1.

    Returns:
        ``(indices int32 [M] or [pad_to], num_valid int32 scalar)``.
    """
    n = tf.shape(scores)[0]
    order = tf.cast(_stable_descending(scores), tf.int32)
    sorted_boxes = _empty_inverted(tf.gather(boxes, order))
    positions = tf.range(n)
    # Strictly decreasing positive rank scores (exact in float32 below 2**24
    # boxes): the kernel then visits boxes exactly in our stable order.
    rank_scores = tf.cast(n - positions, tf.float32)
    if valid is not None:
        # Valid rows keep their relative order; invalid ones get score 0 and
        # are removed by the kernel's `score > 0` test.
        rank_scores = tf.where(tf.gather(valid, order), rank_scores, 0.0)
    if pad_to is not None:
        max_output_size = pad_to
    max_output_size = tf.cast(max_output_size, tf.int32)
    selected, num = tf.raw_ops.NonMaxSuppressionV4(
        boxes=sorted_boxes,
        scores=rank_scores,
        max_output_size=max_output_size,
        iou_threshold=t32,
        score_threshold=tf.constant(0.0, tf.float32),
        pad_to_max_output_size=pad_to is not None,
    )
    if pad_to is None:
        return tf.gather(order, selected), num
    # Padding slots -> index n of `order` extended with -1 (safe when n == 0).
    selected = tf.where(tf.range(pad_to) < num, selected, n)
    order_ext = tf.concat([order, tf.constant([-1], tf.int32)], axis=0)
    return tf.gather(order_ext, selected), num


# --------------------------------------------------------------------------
# Per-class cores.
# --------------------------------------------------------------------------


def _offset_core(boxes, scores, class_ids, t32, max_output_size):
    """torchvision's coordinate trick, reproduced to the bit.

    ``boxes + class * (max(boxes) + 1)`` in float32, then one NMS. The offset
    rounds coordinates, exactly as it does in torchvision.
    """
    max_coordinate = tf.reduce_max(boxes)
    offsets = tf.cast(class_ids, tf.float32) * (max_coordinate + 1.0)
    return _nms_core(boxes + offsets[:, None], scores, t32, max_output_size)[0]


def _per_class_core(boxes, scores, class_ids, t32, max_output_size):
    """One NMS per class (a tf.while_loop over the classes present)."""
    n = tf.shape(scores)[0]
    classes, _ = tf.unique(class_ids)
    num_classes = tf.shape(classes)[0]

    def body(c, keep):
        members = tf.cast(tf.where(tf.equal(class_ids, classes[c]))[:, 0], tf.int32)
        kept, _ = _nms_core(
            tf.gather(boxes, members), tf.gather(scores, members), t32, max_output_size
        )
        kept = tf.gather(members, kept)
        keep = tf.tensor_scatter_nd_update(
            keep, kept[:, None], tf.ones_like(kept, dtype=tf.bool)
        )
        return c + 1, keep

    _, keep = tf.while_loop(
        lambda c, keep: c < num_classes,
        body,
        (tf.constant(0), tf.zeros([n], tf.bool)),
        parallel_iterations=1,
    )
    kept = tf.cast(tf.where(keep)[:, 0], tf.int32)
    kept = tf.gather(kept, _stable_descending(tf.gather(scores, kept)))
    return kept[:max_output_size]


def _batched_core(boxes, scores, class_ids, t32, max_output_size, valid, method):
    """Per-class NMS on the rows where ``valid`` (None = all); int32 [M]."""
    if valid is not None:
        rows = tf.cast(tf.where(valid)[:, 0], tf.int32)
        boxes = tf.gather(boxes, rows)
        scores = tf.gather(scores, rows)
        class_ids = tf.gather(class_ids, rows)
    n = tf.shape(scores)[0]
    if max_output_size is None:
        max_output_size = n
    max_output_size = tf.cast(max_output_size, tf.int32)

    def offset():
        return _offset_core(boxes, scores, class_ids, t32, max_output_size)

    def per_class():
        return _per_class_core(boxes, scores, class_ids, t32, max_output_size)

    if method == "offset":
        kept = offset()
    elif method == "per_class":
        kept = per_class()
    else:
        kept = tf.cond(n >= TORCHVISION_PER_CLASS_MIN_BOXES, per_class, offset)
    if valid is not None:
        kept = tf.gather(rows, kept)
    return kept


# --------------------------------------------------------------------------
# Public API.
# --------------------------------------------------------------------------


def non_max_suppression(
    boxes,
    scores,
    iou_threshold,
    max_output_size=None,
    score_threshold=-math.inf,
    bounding_box_format="yxyx",
):
    """Greedy non-maximum suppression, identical to ``torchvision.ops.nms``.

    ``non_max_suppression(boxes, scores, t, k)`` equals
    ``torchvision.ops.nms(boxes[:, [1, 0, 3, 2]], scores, t)[:k]`` (ties,
    zero-area and inverted boxes and IoU exactly at the threshold included;
    see the module docstring).

    Args:
        boxes: ``[N, 4]`` boxes in ``bounding_box_format`` (default absolute
            ``yxyx``); cast to float32.
        scores: ``[N]`` real scores (any float or int dtype; sorted in their
            own dtype).
        iou_threshold: Python float in ``[0, 1]`` (compared as a float64, like
            torchvision) or a scalar tensor. Boxes with IoU strictly greater
            than it with a kept box are suppressed.
        max_output_size: largest number of indices to return (scalar int or
            int tensor); ``None`` returns all kept boxes.
        score_threshold: boxes with ``score <= score_threshold`` are dropped
            first; the default ``-inf`` drops nothing.
        bounding_box_format: a Keras box format name.

    Returns:
        int32 ``[M]`` indices into ``boxes``, ``M <= max_output_size``, in
        descending score order (equal scores: ascending index).

    Raises:
        ValueError: ``boxes`` not ``[N, 4]``, ``scores`` not ``[N]``, a
            different ``N``, NaN input (eager), ``iou_threshold`` outside
            ``[0, 1]`` or a negative ``max_output_size``.
    """
    _check_iou_threshold(iou_threshold)
    _check_max_output_size(max_output_size)
    boxes, scores, _ = _prepare(boxes, scores, None, bounding_box_format, batched=False)
    if max_output_size is None:
        max_output_size = tf.shape(scores)[0]
    valid = _keep_mask(scores, score_threshold)
    return _nms_core(boxes, scores, _float32_threshold(iou_threshold), max_output_size, valid)[0]


def batched_nms(
    boxes,
    scores,
    class_ids,
    iou_threshold,
    max_output_size=None,
    score_threshold=-math.inf,
    bounding_box_format="yxyx",
    method="auto",
):
    """Per-class NMS, identical to ``torchvision.ops.batched_nms``.

    Boxes of different classes never suppress each other. torchvision (CPU)
    has two implementations, and ``method="auto"`` reproduces its choice:

    * up to 1000 boxes (``boxes.numel() <= 4000``): the coordinate trick, one
      NMS over ``boxes + class_id * (boxes.max() + 1)``. The offset rounds
      float32 coordinates, so IoUs near the threshold can differ slightly
      from per-class IoUs; this rounding is reproduced bit for bit.
    * above 1000 boxes: one NMS per class, then a sort by score. torchvision
      sorts the survivors with an *unstable* sort, so among survivors with
      exactly equal scores its order is an artefact of ``std::sort``; here
      ties are always in ascending index order (same kept set, same order
      whenever the kept scores are distinct).

    ``method="offset"`` or ``"per_class"`` forces one of them (``per_class``
    is the exact per-class IoU; ``offset`` runs a single kernel call and is
    faster with many classes).

    Args:
        boxes: ``[N, 4]`` boxes in ``bounding_box_format`` (default ``yxyx``).
        scores: ``[N]`` real scores.
        class_ids: ``[N]`` integer class of each box (any integer values).
        iou_threshold: as in ``non_max_suppression``.
        max_output_size: largest number of indices returned; ``None`` = all.
        score_threshold: boxes with ``score <= score_threshold`` are removed
            before anything else (torchvision users do this before calling
            ``batched_nms``; the method choice counts the remaining boxes).
        bounding_box_format: a Keras box format name.
        method: ``"auto"``, ``"offset"`` or ``"per_class"``.

    Returns:
        int32 ``[M]`` indices into ``boxes`` in descending score order.

    Raises:
        ValueError: for inputs of the wrong shape or an unknown ``method``.
    """
    _check_iou_threshold(iou_threshold)
    _check_max_output_size(max_output_size)
    _check_method(method)
    if class_ids is None:
        raise ValueError("`class_ids` is required for batched_nms (use non_max_suppression).")
    boxes, scores, class_ids = _prepare(
        boxes, scores, class_ids, bounding_box_format, batched=False
    )
    return _batched_core(
        boxes,
        scores,
        class_ids,
        _float32_threshold(iou_threshold),
        max_output_size,
        _keep_mask(scores, score_threshold),
        method,
    )


def padded_nms(
    boxes,
    scores,
    iou_threshold,
    max_output_size,
    score_threshold=-math.inf,
    class_ids=None,
    bounding_box_format="yxyx",
    method="auto",
):
    """Batched NMS with static output shapes, for graphs and SavedModels.

    Row ``b`` of the result is ``non_max_suppression(boxes[b], scores[b],
    iou_threshold, max_output_size, score_threshold)`` (or ``batched_nms``
    with ``class_ids[b]`` when ``class_ids`` is given), padded with ``-1``
    to ``max_output_size``. Padding rows of the input are removed with
    ``score_threshold`` (give them a score at or below it).

    Runs as a ``tf.map_fn`` over the batch; the batch size and ``N`` may be
    unknown when tracing (``None`` in an ``input_signature``).

    Args:
        boxes: ``[B, N, 4]`` boxes in ``bounding_box_format`` (default ``yxyx``).
        scores: ``[B, N]`` real scores.
        iou_threshold: as in ``non_max_suppression``.
        max_output_size: Python int ``K``, the static output length.
        score_threshold: boxes with ``score <= score_threshold`` are ignored.
        class_ids: optional ``[B, N]`` integer classes for class-aware NMS.
        bounding_box_format: a Keras box format name.
        method: class-aware strategy, see ``batched_nms``.

    Returns:
        ``(indices, num_valid)``: int32 ``[B, K]`` indices into axis 1 of
        ``boxes`` in descending score order, ``-1`` after the first
        ``num_valid[b]`` entries; int32 ``[B]``.
    """
    _check_iou_threshold(iou_threshold)
    _check_max_output_size(max_output_size, required_static=True)
    _check_method(method)
    k = int(max_output_size)
    boxes, scores, class_ids = _prepare(
        boxes, scores, class_ids, bounding_box_format, batched=True
    )
    t32 = _float32_threshold(iou_threshold)

    if class_ids is None:

        def one(args):
            b, s = args
            return _nms_core(b, s, t32, k, _keep_mask(s, score_threshold), pad_to=k)

        elems = (boxes, scores)
    else:

        def one(args):
            b, s, c = args
            kept = _batched_core(b, s, c, t32, k, _keep_mask(s, score_threshold), method)
            num = tf.shape(kept)[0]
            kept = tf.pad(kept, [[0, k - num]], constant_values=-1)
            return tf.ensure_shape(kept, [k]), num

        elems = (boxes, scores, class_ids)
    indices, num_valid = tf.map_fn(
        one,
        elems,
        fn_output_signature=(
            tf.TensorSpec([k], tf.int32),
            tf.TensorSpec([], tf.int32),
        ),
    )
    return indices, num_valid
