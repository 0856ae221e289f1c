"""RoIAlign (three exact algorithms), the FPN level rule and RoIAlign over a pyramid.

All functions take NHWC ``features`` ``[B, H, W, C]`` and ``rois`` ``[B, R, 4]``
in absolute ``yxyx`` input-image pixels (the keras_det canonical format) and
return ``[B, R, out_h, out_w, C]``. Values are those of
``torchvision.ops.roi_align`` (CPU kernel) called on the same
data in NCHW with rois ``[K, 5] = (batch_index, x1, y1, x2, y2)`` and the same
``spatial_scale`` / ``sampling_ratio`` / ``aligned``; the tests check this to
1e-4 on fixtures made with torchvision.

Semantics, per RoI (torchvision's)::

    RoIAlign   start = y1 * scale - offset   (offset = 0.5 if aligned else 0)
               roi_h = y2 * scale - offset - start   (>= 1 when not aligned)
               bin_h = roi_h / out_h, grid G_h = sampling_ratio, or
               ceil(roi_h / out_h) when sampling_ratio <= 0 ("adaptive")
               sample y = start + ph * bin_h + (iy + 0.5) * bin_h / G_h
               value = bilinear(y, x) with: 0 if y < -1 or y > H (or x), y
               clamped to [0, H - 1]; bin = mean over its G_h x G_w samples
               (0 when the grid is empty).

The same on the x axis. Gradients flow to ``features`` (not to ``rois``, as in
torchvision). Padding rows (all-zero boxes) give finite values.

Implementation notes:

* RoIAlign with a fixed ``sampling_ratio`` G (the default, 2) is one
  ``tf.image.crop_and_resize`` of ``(out_h * G, out_w * G)`` points per RoI on
  the feature map edge-padded by 2 pixels (which reproduces torchvision's
  clamping), times torchvision's validity mask, followed by a G x G mean.
  crop_and_resize re-derives the sample positions from normalised box
  corners in float32, so they carry a few ulps of the coordinate (about
  1e-7 x the feature-pixel coordinate): values differ from torchvision by
  that times the local feature slope (measured: ~4e-6 on a 13 x 17 map,
  ~3e-5 on a 100 x 150 map of unit-variance noise).
* Adaptive sampling (``sampling_ratio <= 0``: a grid that differs per RoI) is
  the slow path; prefer a fixed ``sampling_ratio``. It takes the cheaper of
  two exact methods (``tf.cond`` on the batch's largest grid ``G``):
  ``crop`` samples every RoI on ``out * G`` evenly spaced points per axis with
  its own spacing (its first ``out * G_roi`` points are torchvision's) and
  reduces them with a per-RoI averaging matrix, costing about
  ``R * (out_h G_h) * (out_w G_w) * (out_h + 4) * C``; ``matrix`` computes
  ``Wy . F . Wx^T`` with per-RoI interpolation matrices ``Wy [B, R, out_h, H]``
  and ``Wx [B, R, out_w, W]`` (bilinear interpolation and the validity test
  are separable), costing ``R * out_h * H * W * C`` and
  ``[B, R, out_h, G, H]`` weights.
* Bin edges, grids and sample positions follow torchvision's float32 operation
  order (``keras_det.ops._roi_common``).
* ``fpn_level`` (FPN eq. 1) assigns each RoI a pyramid level; ``multilevel_roi_align``
  pools each RoI once, on its level.
"""

import math

import tensorflow as tf

from keras_det.ops._roi_common import check_inputs, dim, div, output_shape, pair, times

__all__ = [
    "roi_align",
    "fpn_level",
    "multilevel_roi_align",
]

# crop_and_resize reads the map padded by this many edge-replicated pixels, so
# every sample torchvision considers valid ([-1, H]) is inside the padded image
# even after float rounding of the normalised box coordinates.
_PAD = 2


def _axis_params(lo, hi, scale, out_size, aligned):
    """torchvision's (start, bin size, roi size) along one axis, float32 [...]."""
    offset = 0.5 if aligned else 0.0
    scale = tf.constant(scale, tf.float32) if not tf.is_tensor(scale) else scale
    start = lo * scale - offset
    end = hi * scale - offset
    size = end - start
    if not aligned:
        size = tf.maximum(size, 1.0)
    return start, div(size, out_size), size


def _sample_coords(start, bin_size, out_size, grid, num_samples):
    """Sample positions ``start + p * bin + (i + 0.5) * bin / grid``.

    Args:
        start, bin_size: float32 ``[...]``.
        out_size: number of bins.
        grid: float32 scalar or ``[...]`` sampling grid (>= 1).
        num_samples: int, number of sample indices ``i``.

    Returns:
        float32 ``[..., out_size, num_samples]``, evaluated in torchvision's
        float32 operation order.
    """
    p = tf.range(out_size, dtype=tf.float64)
    i = tf.cast(tf.range(num_samples), tf.float64) + 0.5
    bin_start = start[..., None] + times(bin_size, p)  # [..., P]
    offsets = times(bin_size, i)  # [..., G]
    if tf.is_tensor(grid) and grid.shape.rank:
        grid = grid[..., None]
    offsets = div(offsets, grid)
    return bin_start[..., :, None] + offsets[..., None, :]


def _edge_pad(x, pad, axis):
    first = tf.gather(x, [0] * pad, axis=axis)
    n = tf.shape(x)[axis]
    last = tf.gather(x, tf.fill([pad], n - 1), axis=axis)
    return tf.concat([first, x, last], axis=axis)


def _roi_align_fixed(
    features, rois, box_indices, output_size, spatial_scale, sampling_ratio, aligned
):
    """RoIAlign with a fixed sampling grid on a flat list of RoIs.

    Args:
        features: float32 ``[B, H, W, C]``.
        rois: float32 ``[K, 4]`` yxyx image pixels.
        box_indices: int32 ``[K]`` image of each RoI.

    Returns:
        float32 ``[K, out_h, out_w, C]``.
    """
    out_h, out_w = output_size
    g = int(sampling_ratio)
    height = tf.shape(features)[1]
    width = tf.shape(features)[2]
    hf = tf.cast(height, tf.float32)
    wf = tf.cast(width, tf.float32)
    y1, x1, y2, x2 = tf.unstack(rois, 4, axis=-1)
    start_h, bin_h, _ = _axis_params(y1, y2, spatial_scale, out_h, aligned)
    start_w, bin_w, _ = _axis_params(x1, x2, spatial_scale, out_w, aligned)
    ys = tf.reshape(_sample_coords(start_h, bin_h, out_h, float(g), g), [-1, out_h * g])
    xs = tf.reshape(_sample_coords(start_w, bin_w, out_w, float(g), g), [-1, out_w * g])
    valid_y = tf.cast((ys >= -1.0) & (ys <= hf), tf.float32)
    valid_x = tf.cast((xs >= -1.0) & (xs <= wf), tf.float32)

    padded = _edge_pad(_edge_pad(features, _PAD, 1), _PAD, 2)
    # crop_and_resize puts point i of n at y1n*(Hp-1) + i*(y2n-y1n)*(Hp-1)/(n-1)
    # (the centre when n == 1), so the first and last samples define the box.
    norm_h = hf + (2 * _PAD - 1)
    norm_w = wf + (2 * _PAD - 1)
    boxes = tf.stack(
        [
            (ys[:, 0] + _PAD) / norm_h,
            (xs[:, 0] + _PAD) / norm_w,
            (ys[:, -1] + _PAD) / norm_h,
            (xs[:, -1] + _PAD) / norm_w,
        ],
        axis=-1,
    )
    crops = tf.image.crop_and_resize(
        padded,
        boxes,
        box_indices,
        crop_size=[out_h * g, out_w * g],
        method="bilinear",
        extrapolation_value=0.0,
    )
    # Samples beyond [-1, H] (or [-1, W]) count as 0. Usually there are none
    # (boxes clipped to the image), and the multiply is then skipped.
    crops = tf.cond(
        tf.reduce_all(valid_y > 0.0) & tf.reduce_all(valid_x > 0.0),
        lambda: crops,
        lambda: crops * (valid_y[:, :, None, None] * valid_x[:, None, :, None]),
    )
    if g > 1:
        crops = tf.nn.avg_pool2d(crops, g, g, "VALID")
    return crops


def _axis_weights(start, bin_size, size, out_size, length):
    """Adaptive-grid interpolation matrix along one axis.

    Args:
        start, bin_size, size: float32 ``[B, R]`` (torchvision's roi_start,
            bin_size, roi_height).
        out_size: number of bins.
        length: feature-map length along the axis (int32 scalar).

    Returns:
        float32 ``[B, R, out_size, length]``: for bin p and row h, the sum over
        the bin's samples of ``valid * max(0, 1 - |clamp(y) - h|)`` divided by
        ``max(grid, 1)``.
    """
    grid = tf.maximum(tf.math.ceil(div(size, out_size)), 0.0)  # [B, R]
    max_grid = tf.cast(tf.reduce_max(tf.concat([tf.reshape(grid, [-1]), [1.0]], 0)), tf.int32)
    safe_grid = tf.maximum(grid, 1.0)
    coords = _sample_coords(start, bin_size, out_size, safe_grid, max_grid)  # [B, R, P, G]
    lf = tf.cast(length, tf.float32)
    used = tf.cast(tf.range(max_grid), tf.float32) < grid[..., None, None]
    valid = used & (coords >= -1.0) & (coords <= lf)
    clamped = tf.clip_by_value(coords, 0.0, lf - 1.0)
    rows = tf.cast(tf.range(length), tf.float32)
    kernel = tf.nn.relu(1.0 - tf.abs(clamped[..., None] - rows))  # [B, R, P, G, L]
    kernel = kernel * tf.cast(valid, tf.float32)[..., None]
    return tf.reduce_sum(kernel, axis=-2) / safe_grid[..., None, None]


def _roi_align_adaptive(features, rois, output_size, spatial_scale, aligned):
    """Exact adaptive-grid RoIAlign as ``Wy . F . Wx^T``; float32 ``[B, R, oh, ow, C]``."""
    out_h, out_w = output_size
    height = tf.shape(features)[1]
    width = tf.shape(features)[2]
    y1, x1, y2, x2 = tf.unstack(rois, 4, axis=-1)
    start_h, bin_h, size_h = _axis_params(y1, y2, spatial_scale, out_h, aligned)
    start_w, bin_w, size_w = _axis_params(x1, x2, spatial_scale, out_w, aligned)
    wy = _axis_weights(start_h, bin_h, size_h, out_h, height)  # [B, R, oh, H]
    wx = _axis_weights(start_w, bin_w, size_w, out_w, width)  # [B, R, ow, W]
    rows = tf.einsum("brih,bhwc->briwc", wy, features)
    return tf.einsum("briwc,brjw->brijc", rows, wx)


def _adaptive_axis(lo, hi, scale, out_size, aligned, length):
    """Per-RoI adaptive grid along one axis, for :func:`_roi_align_adaptive_crop`.

    Returns:
        (first, last, reduce, count): float32 ``[K]`` positions of the first
        and last of ``out_size * max_grid`` evenly spaced points (spacing
        ``bin / grid``), the float32 ``[K, out_size, out_size * max_grid]``
        matrix that averages each bin's own samples (times torchvision's
        validity test, zero for the points past the RoI's ``out_size * grid``),
        and the number of points (int32 scalar).
    """
    start, bin_size, size = _axis_params(lo, hi, scale, out_size, aligned)
    grid = tf.maximum(tf.math.ceil(div(size, out_size)), 0.0)  # [K]
    max_grid = tf.cast(tf.reduce_max(tf.concat([grid, [1.0]], 0)), tf.int32)
    count = out_size * max_grid
    safe = tf.maximum(grid, 1.0)
    j_int = tf.range(count)[None, :]  # [1, N]
    safe_int = tf.cast(safe, tf.int32)[:, None]
    p = tf.cast(j_int // safe_int, tf.float64)  # bin of point j
    i = tf.cast(j_int % safe_int, tf.float64)  # index inside the bin
    j = tf.cast(j_int, tf.float64)
    bin64 = tf.cast(bin_size, tf.float64)[:, None]
    # torchvision's float32 order: (start + p * bin) + ((i + 0.5) * bin) / grid.
    bin_start = start[:, None] + tf.cast(p * bin64, tf.float32)
    offset = div(tf.cast((i + 0.5) * bin64, tf.float32), safe[:, None])
    coords = bin_start + offset  # [K, N]
    lf = tf.cast(length, tf.float32)
    keep = (p < out_size) & (j < tf.cast(out_size * grid, tf.float64)[:, None])
    keep = keep & (coords >= -1.0) & (coords <= lf)
    bins = tf.range(out_size, dtype=tf.float64)[None, :, None]
    reduce = tf.cast(tf.equal(p[:, None, :], bins) & keep[:, None, :], tf.float32)
    reduce = reduce / safe[:, None, None]
    # crop_and_resize's evenly spaced points: start + (j + 0.5) * bin / grid.
    step = div(bin_size, safe)
    first = start + 0.5 * step
    last = start + (tf.cast(count, tf.float32) - 0.5) * step
    return first, last, reduce, count


def _roi_align_adaptive_crop(features, rois, box_indices, output_size, spatial_scale, aligned):
    """Adaptive-grid RoIAlign with crop_and_resize on a flat list of RoIs.

    Every RoI is sampled on ``out * max_grid`` evenly spaced points per axis
    (``max_grid`` over all RoIs) with its own spacing ``bin / grid``; its
    first ``out * grid`` points are exactly torchvision's samples and a
    per-RoI averaging matrix (which also applies the validity test) reduces
    them to bins. Cost ~ ``K * (out * max_grid)**2 * C * (out + 4)``.

    Returns:
        float32 ``[K, out_h, out_w, C]``.
    """
    out_h, out_w = output_size
    height = tf.shape(features)[1]
    width = tf.shape(features)[2]
    y1, x1, y2, x2 = tf.unstack(rois, 4, axis=-1)
    first_y, last_y, reduce_y, n_h = _adaptive_axis(y1, y2, spatial_scale, out_h, aligned, height)
    first_x, last_x, reduce_x, n_w = _adaptive_axis(x1, x2, spatial_scale, out_w, aligned, width)
    padded = _edge_pad(_edge_pad(features, _PAD, 1), _PAD, 2)
    norm_h = tf.cast(height, tf.float32) + (2 * _PAD - 1)
    norm_w = tf.cast(width, tf.float32) + (2 * _PAD - 1)
    boxes = tf.stack(
        [
            (first_y + _PAD) / norm_h,
            (first_x + _PAD) / norm_w,
            (last_y + _PAD) / norm_h,
            (last_x + _PAD) / norm_w,
        ],
        axis=-1,
    )
    crops = tf.image.crop_and_resize(
        padded, boxes, box_indices, crop_size=tf.stack([n_h, n_w]), extrapolation_value=0.0
    )
    channels = dim(features, 3)
    # [K, oh, n_h] @ [K, n_h, n_w * C], then [K, 1, ow, n_w] @ [K, oh, n_w, C]:
    # batched matmuls with no transposes.
    rows = tf.matmul(reduce_y, tf.reshape(crops, [tf.shape(crops)[0], n_h, -1]))
    rows = tf.reshape(rows, [tf.shape(crops)[0], out_h, n_w, channels])
    return tf.matmul(reduce_x[:, None], rows)


def _flatten_rois(rois):
    """``[B, R, 4]`` → (``[B*R, 4]``, int32 image index ``[B*R]``)."""
    batch = tf.shape(rois)[0]
    num = tf.shape(rois)[1]
    box_indices = tf.reshape(tf.repeat(tf.range(batch), num), [-1])
    return tf.reshape(rois, [-1, 4]), box_indices


def roi_align(
    features,
    rois,
    output_size=(7, 7),
    spatial_scale=1.0 / 16,
    sampling_ratio=2,
    aligned=True,
):
    """RoIAlign (Mask R-CNN) with the semantics of ``torchvision.ops.roi_align``.

    Args:
        features: float ``[B, H, W, C]`` feature map (NHWC).
        rois: float ``[B, R, 4]`` boxes in absolute ``yxyx`` input-image
            pixels; row ``r`` of image ``b`` is pooled from ``features[b]``.
            All-zero padding rows are allowed (their output is finite and
            meaningless).
        output_size: ``(out_h, out_w)`` or an int.
        spatial_scale: feature-map pixels per image pixel (1/stride).
        sampling_ratio: samples per bin along each axis; ``<= 0`` means
            adaptive, ``ceil(roi_size / out_size)`` per RoI (torchvision's
            ``-1``), which takes a slower path (see the module notes).
        aligned: shift boxes by -0.5 feature pixel (Detectron2); ``False`` is
            the legacy behaviour that also clamps RoI sizes to >= 1.

    Returns:
        ``[B, R, out_h, out_w, C]`` in the dtype of ``features``.
    """
    out_h, out_w = pair(output_size)
    features, rois = check_inputs(features, rois)
    dtype = features.dtype
    f32 = tf.cast(features, tf.float32)
    if int(sampling_ratio) > 0:
        flat, box_indices = _flatten_rois(rois)
        out = _roi_align_fixed(
            f32, flat, box_indices, (out_h, out_w), spatial_scale, sampling_ratio, aligned
        )
        out = tf.reshape(out, output_shape(features, rois, out_h, out_w))
    else:
        out = _roi_align_adaptive_either(f32, rois, (out_h, out_w), spatial_scale, aligned)
    return tf.cast(out, dtype)


def _roi_align_adaptive_either(features, rois, output_size, spatial_scale, aligned):
    """Adaptive RoIAlign by whichever exact method costs fewer multiply-adds.

    ``crop``: ``(out_h * Gh) * (out_w * Gw) * (out_h + 4)`` per RoI and
    channel (``G`` = largest adaptive grid in the batch); ``matrix``:
    ``out_h * H * W``.
    """
    out_h, out_w = output_size
    flat, box_indices = _flatten_rois(rois)
    y1, x1, y2, x2 = tf.unstack(flat, 4, axis=-1)

    def max_grid(lo, hi, out_size):
        _, _, size = _axis_params(lo, hi, spatial_scale, out_size, aligned)
        grid = tf.math.ceil(div(size, out_size))
        return tf.reduce_max(tf.concat([grid, [1.0]], 0))

    crop_cost = (out_h * max_grid(y1, y2, out_h)) * (out_w * max_grid(x1, x2, out_w)) * (out_h + 4)
    hw = tf.cast(tf.shape(features)[1] * tf.shape(features)[2], tf.float32)
    matrix_cost = out_h * hw

    def by_crop():
        out = _roi_align_adaptive_crop(
            features, flat, box_indices, output_size, spatial_scale, aligned
        )
        return tf.reshape(out, output_shape(features, rois, out_h, out_w))

    def by_matrix():
        out = _roi_align_adaptive(features, rois, output_size, spatial_scale, aligned)
        return tf.reshape(out, output_shape(features, rois, out_h, out_w))

    return tf.cond(crop_cost < matrix_cost, by_crop, by_matrix)


def fpn_level(rois, min_level=2, max_level=5, canonical_level=4, canonical_scale=224):
    """FPN level of each RoI (Feature Pyramid Networks, eq. 1; torchvision's LevelMapper).

    ``k = floor(canonical_level + log2(sqrt(area) / canonical_scale) + 1e-6)``
    clamped to ``[min_level, max_level]``; ``area`` is the box area in image
    pixels (no ``+1``). Empty or inverted boxes get ``min_level``.

    Args:
        rois: float ``[..., 4]`` absolute ``yxyx``.

    Returns:
        int32 ``[...]`` level numbers (not offsets).
    """
    rois = tf.cast(rois, tf.float32)
    y1, x1, y2, x2 = tf.unstack(rois, 4, axis=-1)
    area = tf.maximum((x2 - x1) * (y2 - y1), 0.0)
    ratio = div(tf.sqrt(area), canonical_scale)
    # log2 in float64 then rounded to float32: exact at powers of two, where
    # the float32 log(x)/log(2) can miss the integer.
    log2 = tf.cast(tf.math.log(tf.cast(ratio, tf.float64)) / math.log(2.0), tf.float32)
    level = tf.floor((float(canonical_level) + log2) + tf.constant(1e-6, tf.float32))
    level = tf.clip_by_value(level, float(min_level), float(max_level))
    return tf.cast(level, tf.int32)


def multilevel_roi_align(
    features,
    levels,
    rois,
    output_size=(7, 7),
    sampling_ratio=2,
    aligned=True,
    canonical_level=4,
    canonical_scale=224,
):
    """RoIAlign from an FPN pyramid, each RoI on the level chosen by :func:`fpn_level`.

    With ``aligned=False`` this is ``torchvision.ops.MultiScaleRoIAlign``
    (whose levels have scales ``2**-level``).

    Args:
        features: list of float ``[B, H_l, W_l, C]`` maps.
        levels: list of ints, the level of each map (stride ``2**level``);
            must be consecutive (in any order).
        rois: float ``[B, R, 4]`` absolute ``yxyx`` input-image pixels.
        output_size, sampling_ratio, aligned: as in :func:`roi_align`.
        canonical_level, canonical_scale: the FPN rule's ``k0`` and ``s0``.

    Returns:
        ``[B, R, out_h, out_w, C]`` in the dtype of the first map.

    The RoIs are partitioned by level (``tf.dynamic_partition``), so each RoI
    is sampled once, on its own level. Adaptive sampling uses the
    crop_and_resize method of :func:`roi_align` per level; its cost grows with
    the square of the largest adaptive grid on the level (the FPN rule keeps
    square RoIs at 14-28 pixels of their level, grid <= 4 for 7 x 7 bins, but
    elongated RoIs raise it), so prefer a fixed ``sampling_ratio``.
    """
    out_h, out_w = pair(output_size)
    levels = [int(k) for k in levels]
    if len(features) != len(levels) or not levels:
        raise ValueError(f"Got {len(features)} feature maps for levels {levels}.")
    if sorted(levels) != list(range(min(levels), max(levels) + 1)):
        raise ValueError(f"FPN levels must be distinct and consecutive, got {levels}.")
    checked = [check_inputs(f, rois) for f in features]
    features = [f for f, _ in checked]
    rois = checked[0][1]
    dtype = features[0].dtype
    features = [tf.cast(f, tf.float32) for f in features]
    min_level, max_level = min(levels), max(levels)
    assigned = fpn_level(rois, min_level, max_level, canonical_level, canonical_scale)  # [B, R]
    scales = [2.0 ** -k for k in levels]

    flat, box_indices = _flatten_rois(rois)
    flat_level = tf.reshape(assigned, [-1])
    order = tf.constant(levels, tf.int32)
    matches = tf.equal(flat_level[:, None], order[None, :])
    partition = tf.cast(tf.argmax(matches, axis=-1), tf.int32)
    ids = tf.dynamic_partition(tf.range(tf.shape(flat)[0]), partition, len(levels))
    outs = []
    for feat, scale, idx in zip(features, scales, ids):
        level_rois = tf.gather(flat, idx)
        level_images = tf.gather(box_indices, idx)
        if int(sampling_ratio) > 0:
            outs.append(
                _roi_align_fixed(
                    feat,
                    level_rois,
                    level_images,
                    (out_h, out_w),
                    scale,
                    sampling_ratio,
                    aligned,
                )
            )
        else:
            outs.append(
                _roi_align_adaptive_crop(
                    feat, level_rois, level_images, (out_h, out_w), scale, aligned
                )
            )
    out = tf.dynamic_stitch(ids, outs)
    out = tf.reshape(out, output_shape(features[0], rois, out_h, out_w))
    return tf.cast(out, dtype)
