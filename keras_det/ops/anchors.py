"""Anchor grids: Faster R-CNN, multi-level (FPN-style), SSD default boxes, YOLO priors.

``kmeans_anchors`` derives YOLO priors from training boxes (k-means, 1 - IoU);
``kmeans_anchor_sizes`` the anchor sizes (``sqrt(w h)``) of the same clusters,
for Faster R-CNN / SSD-style anchors that combine sizes with aspect ratios.

All absolute anchors are ``yxyx`` in input-image pixels; SSD default boxes are
``rel_yxyx`` (fractions of the image), as in the paper.

Anchor order (shared by every function here and by the heads that predict
against them): row-major over the feature map, then the anchors of one cell.
A head output ``[B, h, w, A * k]`` reshaped to ``[B, h * w * A, k]`` lines up
with the anchors index for index.

How many anchors does a 600×800 image give? With a stride-16 map of
``ceil(600/16) × ceil(800/16) = 38 × 50`` cells ("same"-padded backbones such as
ResNet or MobileNet) and 9 anchors per cell: 38·50·9 = **17,100**. VGG16's conv5_3
is made by four 'valid' 2×2 max-pools, which floor: 37 × 50 cells → **16,650**.
The often-quoted "~17,900" / "~20,000 (60×40×9)" figures are for other image
sizes (the Faster R-CNN paper's ~1000×600 images give 63×38·9 ≈ 21,500) or are
rounded: the count is always ``cells(H) · cells(W) · 9``; see ``num_anchors``.
"""

import math

import numpy as np
import tensorflow as tf


def _pair(value, name):
    if isinstance(value, (int, float)):
        return float(value), float(value)
    if len(value) != 2:
        raise ValueError(f"`{name}` must be a number or a (y, x) pair, got {value!r}.")
    return float(value[0]), float(value[1])


def cell_anchors(sizes=(128, 256, 512), aspect_ratios=(0.5, 1.0, 2.0)):
    """The anchors of one cell, centred on ``(0, 0)``.

    Each anchor has area ``size**2`` and height/width ratio ``aspect_ratio``
    (``h = size * sqrt(r)``, ``w = size / sqrt(r)``; the ratio convention of
    Faster R-CNN and torchvision). Order: aspect-ratio major, size minor
    (``[(r0, s0), (r0, s1), ..., (r1, s0), ...]``), as torchvision orders them.

    Args:
        sizes: anchor side lengths (square-root of the area), in pixels.
        aspect_ratios: height / width ratios.

    Returns:
        float32 ``[len(aspect_ratios) * len(sizes), 4]`` ``yxyx``, not rounded.
    """
    sizes = np.asarray(sizes, np.float64).reshape(-1)
    ratios = np.asarray(aspect_ratios, np.float64).reshape(-1)
    if sizes.size == 0 or ratios.size == 0 or np.any(sizes <= 0) or np.any(ratios <= 0):
        raise ValueError(
            f"`sizes` and `aspect_ratios` must be non-empty and positive, got {sizes!r} and {ratios!r}."
        )
    h = (np.sqrt(ratios)[:, None] * sizes[None, :]).reshape(-1)
    w = (sizes[None, :] / np.sqrt(ratios)[:, None]).reshape(-1)
    return tf.constant(np.stack([-h / 2, -w / 2, h / 2, w / 2], axis=-1), tf.float32)


def grid_anchors(feature_shape, stride=16, sizes=(128, 256, 512), aspect_ratios=(0.5, 1.0, 2.0), offset=0.5):
    """Anchors tiled over a feature map (Faster R-CNN's RPN anchors).

    Cell ``(i, j)`` of a stride-``s`` map is centred at
    ``((i + offset) * s_y, (j + offset) * s_x)`` in image pixels. With the
    default ``offset=0.5`` anchors sit on cell centres; ``offset=0`` gives
    torchvision's ``AnchorGenerator`` placement (cell corners).

    Args:
        feature_shape: ``(height, width)`` of the feature map (ints or scalar
            tensors, so a dynamic shape works inside ``tf.function``).
        stride: the map's stride in pixels, a number or ``(s_y, s_x)``.
        sizes: anchor sizes in pixels (3 scales: 128, 256, 512 by default).
        aspect_ratios: height/width ratios (1:2, 1:1, 2:1 by default).
        offset: cell-centre offset in units of the stride.

    Returns:
        float32 ``[height * width * A, 4]`` absolute ``yxyx``, row-major over
        cells then anchors of a cell (``A = len(sizes) * len(aspect_ratios)``).
    """
    stride_y, stride_x = _pair(stride, "stride")
    base = cell_anchors(sizes, aspect_ratios)
    height = tf.cast(feature_shape[0], tf.int32)
    width = tf.cast(feature_shape[1], tf.int32)
    cy = (tf.cast(tf.range(height), tf.float32) + offset) * stride_y
    cx = (tf.cast(tf.range(width), tf.float32) + offset) * stride_x
    cy, cx = tf.meshgrid(cy, cx, indexing="ij")
    centres = tf.stack([cy, cx, cy, cx], axis=-1)  # [h, w, 4]
    anchors = centres[:, :, None, :] + base[None, None, :, :]  # [h, w, A, 4]
    return tf.reshape(anchors, [-1, 4])


def prior_grid(feature_shape, stride, priors_wh):
    """Prior boxes of arbitrary ``(width, height)`` tiled on a feature map.

    The layout of `grid_anchors` (row-major over cells, then the priors of a
    cell, centred on the cell) for a list of free width/height pairs instead
    of a sizes × ratios product: YOLO's priors, and YOLO v1's grid cells (one
    prior of the cell's own size).

    Args:
        feature_shape: ``(height, width)`` of the map.
        stride: cell size in pixels, a number or ``(s_y, s_x)``.
        priors_wh: sequence of ``(width, height)`` pixels.

    Returns:
        float32 ``[height * width * len(priors_wh), 4]`` absolute ``yxyx``.
    """
    per_prior = [
        grid_anchors(feature_shape, stride, sizes=(math.sqrt(w * h),), aspect_ratios=(h / w,)) for w, h in priors_wh
    ]
    return tf.reshape(tf.stack(per_prior, axis=1), [-1, 4])


def feature_map_size(image_size, stride, rounding="ceil"):
    """Feature-map side for an image side and a stride.

    ``rounding="ceil"`` models "same"-padded stride-2 layers (ResNet,
    MobileNet, EfficientNet); ``"floor"`` models 'valid' max-pools (VGG16).
    """
    if rounding == "ceil":
        return int(math.ceil(image_size / stride))
    if rounding == "floor":
        return int(image_size // stride)
    raise ValueError(f"`rounding` must be 'ceil' or 'floor', got {rounding!r}.")


def num_anchors(image_shape, stride=16, sizes=(128, 256, 512), aspect_ratios=(0.5, 1.0, 2.0), rounding="ceil"):
    """Number of anchors of ``grid_anchors`` for an image.

    >>> num_anchors((600, 800))                     # 38 * 50 * 9
    17100
    >>> num_anchors((600, 800), rounding="floor")   # VGG16 conv5_3: 37 * 50 * 9
    16650
    """
    h = feature_map_size(image_shape[0], stride, rounding)
    w = feature_map_size(image_shape[1], stride, rounding)
    return h * w * len(sizes) * len(aspect_ratios)


def multilevel_anchors(image_shape=None, strides=(8, 16, 32, 64, 128), sizes=None, aspect_ratios=(0.5, 1.0, 2.0), scales_per_octave=1, feature_shapes=None, offset=0.5):
    """Anchors for one or several feature maps (FPN-style multi-level heads).

    Every two-stage anchor set is built here (the RPN of ``FasterRCNN`` on
    one map or on an FPN pyramid): level ``l`` (stride ``strides[l]``) gets
    ``grid_anchors`` of the sizes of ``sizes[l]`` and each aspect ratio. A
    number ``sizes[l]`` gives ``sizes[l] * 2**(k / scales_per_octave)`` for
    ``k < scales_per_octave`` (RetinaNet uses 3 scales per octave); a
    sequence ``sizes[l]`` is taken as that level's sizes. The default size per
    level is ``4 * stride`` (FPN: 32 px at stride 8 … 512 px at 128).

    Args:
        image_shape: ``(height, width[, channels])`` of the input image: the
            maps are then ``ceil(H / stride)``. Unused with ``feature_shapes``.
        strides: one stride per level.
        sizes: per level, a base anchor size or a sequence of sizes
            (defaults to ``4 * stride``).
        aspect_ratios: height/width ratios, shared by all levels.
        scales_per_octave: intermediate scales per level (number sizes only).
        feature_shapes: per level the map's ``(height, width)`` (ints or
            scalar tensors: dynamic shapes work inside ``tf.function``).
        offset: cell-centre offset in units of the stride (``grid_anchors``).

    Returns:
        ``(anchors, counts)``: float32 ``[N, 4]`` absolute ``yxyx`` with the
        levels concatenated in order (row-major over cells, then the anchors
        of a cell), and the per-level counts (Python ints for static shapes,
        scalar tensors otherwise).

    Raises:
        ValueError: ``sizes`` or ``feature_shapes`` not one entry per level,
            or neither ``image_shape`` nor ``feature_shapes``.
    """
    if sizes is None:
        sizes = [4 * s for s in strides]
    if len(sizes) != len(strides):
        raise ValueError(f"`sizes` ({len(sizes)}) and `strides` ({len(strides)}) must have one entry per level.")
    if feature_shapes is None:
        if image_shape is None:
            raise ValueError("multilevel_anchors needs `image_shape` or `feature_shapes`.")
        feature_shapes = [(feature_map_size(image_shape[0], s), feature_map_size(image_shape[1], s)) for s in strides]
    if len(feature_shapes) != len(strides):
        raise ValueError(f"`feature_shapes` ({len(feature_shapes)}) and `strides` ({len(strides)}) must have one entry per level.")
    out, counts = [], []
    for stride, size, shape in zip(strides, sizes, feature_shapes):
        if isinstance(size, (int, float)):
            level_sizes = [size * 2 ** (k / scales_per_octave) for k in range(scales_per_octave)]
        else:
            level_sizes = list(size)
        out.append(grid_anchors(shape, stride, level_sizes, aspect_ratios, offset))
        counts.append(shape[0] * shape[1] * len(level_sizes) * len(aspect_ratios))
    return (out[0] if len(out) == 1 else tf.concat(out, axis=0)), counts


def ssd_scales(num_levels, min_scale=0.2, max_scale=0.9):
    """Liu et al.'s scales ``s_k = s_min + (s_max - s_min)(k - 1)/(m - 1)``, k = 1..m.

    Returns ``m + 1`` values: the last, ``s_{m+1} = 1.0``, only serves the extra
    ``sqrt(s_m s_{m+1})`` box of the last level (torchvision's choice; the
    paper leaves it open).
    """
    if num_levels < 1:
        raise ValueError(f"`num_levels` must be >= 1, got {num_levels}.")
    if num_levels == 1:
        return [float(min_scale), 1.0]
    step = (max_scale - min_scale) / (num_levels - 1)
    return [min_scale + step * k for k in range(num_levels)] + [1.0]


def ssd_default_boxes(feature_map_sizes, min_scale=0.2, max_scale=0.9, aspect_ratios=(1.0, 2.0, 0.5, 3.0, 1.0 / 3.0), clip=True):
    """SSD default boxes (Liu et al., 2016) for a list of feature maps.

    For level ``k`` with scale ``s_k`` and each width/height ratio ``a``: a box of
    width ``s_k sqrt(a)`` and height ``s_k / sqrt(a)``; when ``a = 1`` is among
    the ratios, an extra square box of side ``s'_k = sqrt(s_k s_{k+1})``.
    Boxes are centred at ``((i + 0.5) / f_h, (j + 0.5) / f_w)``. Note the ratio is
    width/height here (SSD's convention), height/width in ``grid_anchors``.

    Per-cell order: ``[a_0 at s_k, (extra 1:1 at s'_k right after a = 1), a_1, ...]``
    — with the default ratios ``[1:1 s_k, 1:1 s'_k, 2, 1/2, 3, 1/3]``, 6 boxes.

    Args:
        feature_map_sizes: list of ints (square maps) or ``(f_h, f_w)`` pairs,
            finest level first (SSD300: 38, 19, 10, 5, 3, 1).
        min_scale, max_scale: ``s_min`` and ``s_max``.
        aspect_ratios: one sequence of width/height ratios for all levels, or
            a list with one sequence per level (SSD300 uses
            ``[1, 2, 1/2]`` on some levels and 6 boxes on others).
        clip: clip boxes to ``[0, 1]``.

    Returns:
        float32 ``[N, 4]`` ``rel_yxyx`` (multiply by the image size for pixels).
    """
    num_levels = len(feature_map_sizes)
    if aspect_ratios and isinstance(aspect_ratios[0], (list, tuple)):
        per_level = [tuple(r) for r in aspect_ratios]
        if len(per_level) != num_levels:
            raise ValueError(
                f"`aspect_ratios` has {len(per_level)} entries for {num_levels} feature maps."
            )
    else:
        per_level = [tuple(aspect_ratios)] * num_levels
    scales = ssd_scales(num_levels, min_scale, max_scale)
    boxes = []
    for k, (fmap, ratios) in enumerate(zip(feature_map_sizes, per_level)):
        f_h, f_w = (fmap, fmap) if isinstance(fmap, int) else (int(fmap[0]), int(fmap[1]))
        wh = []
        for a in ratios:
            if a <= 0:
                raise ValueError(f"`aspect_ratios` must be positive, got {a!r}.")
            wh.append((scales[k] * math.sqrt(a), scales[k] / math.sqrt(a)))
            if a == 1.0:
                extra = math.sqrt(scales[k] * scales[k + 1])
                wh.append((extra, extra))
        wh = np.asarray(wh, np.float64)  # [A, 2] (w, h)
        cy, cx = np.meshgrid((np.arange(f_h) + 0.5) / f_h, (np.arange(f_w) + 0.5) / f_w, indexing="ij")
        cy = cy.reshape(-1, 1)
        cx = cx.reshape(-1, 1)
        level = np.stack(
            [cy - wh[None, :, 1] / 2, cx - wh[None, :, 0] / 2, cy + wh[None, :, 1] / 2, cx + wh[None, :, 0] / 2],
            axis=-1,
        ).reshape(-1, 4)
        boxes.append(level)
    boxes = np.concatenate(boxes, axis=0)
    if clip:
        boxes = np.clip(boxes, 0.0, 1.0)
    return tf.constant(boxes, tf.float32)


def kmeans_anchors(boxes_wh, k=9, seed=0, max_iter=300):
    """YOLO priors: k-means on box sizes with the distance ``1 - IoU`` (YOLOv2).

    Two boxes are compared by their widths and heights only, as if they shared
    a corner: ``IoU = min(w1, w2) min(h1, h2) / (w1 h1 + w2 h2 - overlap)``, so
    large and small boxes are clustered by shape rather than by a Euclidean
    error that large boxes would dominate. Centroids start from a
    k-means++ draw (``seed``) and move to the mean of their members until the
    assignment stops changing.

    Args:
        boxes_wh: ``[N, 2]`` positive (width, height) of the training boxes
            (pixels of the training image size, or relative).
        k: number of priors (9 for three scales × 3).
        seed: RNG seed of the initialisation.
        max_iter: iteration cap.

    Returns:
        float32 numpy ``[k, 2]`` (width, height), sorted by area ascending
        (split into consecutive groups of ``k / num_scales`` for the scales,
        finest first).

    Raises:
        ValueError: fewer than ``k`` boxes, or a non-positive size.
    """
    wh = np.asarray(boxes_wh, np.float64).reshape(-1, 2)
    if wh.shape[0] < k or k < 1:
        raise ValueError(f"k-means needs at least k={k} boxes, got {wh.shape[0]}.")
    if np.any(wh <= 0) or not np.all(np.isfinite(wh)):
        raise ValueError("`boxes_wh` must hold positive, finite widths and heights.")

    def wh_iou(a, b):
        inter = np.minimum(a[:, None, 0], b[None, :, 0]) * np.minimum(a[:, None, 1], b[None, :, 1])
        return inter / (a[:, None, 0] * a[:, None, 1] + b[None, :, 0] * b[None, :, 1] - inter)

    rng = np.random.default_rng(seed)
    centroids = [wh[rng.integers(len(wh))]]
    for _ in range(1, k):  # k-means++: draw far (in 1 - IoU) boxes more often
        d = np.min(1.0 - wh_iou(wh, np.asarray(centroids)), axis=1) ** 2
        p = d / d.sum() if d.sum() > 0 else None
        centroids.append(wh[rng.choice(len(wh), p=p)])
    centroids = np.asarray(centroids)
    assign = None
    for _ in range(max_iter):
        new_assign = np.argmax(wh_iou(wh, centroids), axis=1)
        if assign is not None and np.array_equal(new_assign, assign):
            break
        assign = new_assign
        for c in range(k):
            members = wh[assign == c]
            if len(members):
                centroids[c] = members.mean(axis=0)
    order = np.argsort(centroids[:, 0] * centroids[:, 1])
    return centroids[order].astype(np.float32)


def kmeans_anchor_sizes(boxes_wh, k=4, seed=0, max_iter=300):
    """Anchor sizes from training boxes: ``sqrt(w h)`` of the `kmeans_anchors` clusters.

    The clusters are found as in YOLOv2 (k-means on ``(w, h)`` with the
    distance ``1 - IoU`` of corner-aligned boxes); each centroid
    ``(w_c, h_c)`` (the mean of its members) gives the size ``sqrt(w_c h_c)``,
    the side of the square anchor of the same area, which `AnchorGenerator`
    then combines with its aspect ratios.

    Args:
        boxes_wh: ``[N, 2]`` positive (width, height) of the training boxes,
            in pixels of the image size the model trains at.
        k: number of sizes.
        seed: RNG seed of the k-means++ initialisation.
        max_iter: iteration cap.

    Returns:
        float32 numpy ``[k]``, ascending.

    Raises:
        ValueError: fewer than ``k`` boxes, or a non-positive size.
    """
    centroids = kmeans_anchors(boxes_wh, k=k, seed=seed, max_iter=max_iter).astype(np.float64)
    return np.sort(np.sqrt(centroids[:, 0] * centroids[:, 1])).astype(np.float32)
