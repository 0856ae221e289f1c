"""RoI feature extraction layers: RoIPooling, RoIAlign, MultiLevelRoIAlign, and
``RoIPooler`` (the one a detector holds: one map or a pyramid, by level names).

Each layer is called as ``layer(features, rois)`` with NHWC ``features`` and
``rois`` ``[B, R, 4]`` in absolute ``yxyx`` input-image pixels (padding rows of
zeros allowed) and returns ``[B, R, out_h, out_w, C]``. Values are those of
``torchvision.ops.roi_pool`` / ``roi_align`` / ``MultiScaleRoIAlign``; see
:mod:`keras_det.ops.roi_align` and :mod:`keras_det.ops.roi_pool` for the exact
semantics.

The layers compute in float32 and return the layer's compute dtype; the RoI
coordinates are never cast to a low-precision dtype under mixed precision.
"""

import re

import keras
import tensorflow as tf

from keras_det.ops import roi_align as align_ops
from keras_det.ops import roi_pool as pool_ops


def _size_pair(output_size):
    if isinstance(output_size, int):
        return (output_size, output_size)
    output_size = tuple(int(s) for s in output_size)
    if len(output_size) != 2 or min(output_size) < 1:
        raise ValueError(
            f"`output_size` must be a positive int or (height, width), got {output_size!r}."
        )
    return output_size


class _RoILayer(keras.layers.Layer):
    """Shared plumbing: no input autocasting, output shape, float32 compute."""

    def __init__(self, output_size=(7, 7), **kwargs):
        super().__init__(**kwargs)
        self.output_size = _size_pair(output_size)
        # Box coordinates in pixels must stay float32 under mixed precision,
        # so inputs are not autocast (arrays are converted in `call`).
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True

    def _features_channels(self, features_shape):
        return features_shape[-1]

    def compute_output_shape(self, features_shape, rois_shape):
        return (
            rois_shape[0],
            rois_shape[1],
            self.output_size[0],
            self.output_size[1],
            self._features_channels(features_shape),
        )

    def _finish(self, out):
        return tf.cast(out, self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config["output_size"] = list(self.output_size)
        return config


@keras.saving.register_keras_serializable(package="keras_det")
class RoIPooling(_RoILayer):
    """RoI max pooling (Fast R-CNN), equal to ``torchvision.ops.roi_pool``.

    Box corners are scaled by ``spatial_scale`` and rounded to feature pixels;
    each RoI is split into ``out_h x out_w`` integer bins and each bin is the
    max over its pixels (0 for a bin outside the map).

    Args:
        output_size: ``(out_h, out_w)`` or an int.
        spatial_scale: feature-map pixels per input-image pixel (1/stride).
        **kwargs: ``keras.layers.Layer`` arguments.

    Call args:
        features: float ``[B, H, W, C]`` feature map (NHWC).
        rois: float ``[B, R, 4]`` absolute ``yxyx`` boxes in input-image
            pixels; all-zero rows (padding) are allowed.

    Returns:
        ``[B, R, out_h, out_w, C]``.

    Memory: the range-max table holds ``(floor(log2 H) + 1) * (floor(log2 W)
    + 1)`` copies of the feature map.
    """

    def __init__(self, output_size=(7, 7), spatial_scale=1.0 / 16, **kwargs):
        super().__init__(output_size=output_size, **kwargs)
        self.spatial_scale = float(spatial_scale)

    def call(self, features, rois):
        features = tf.cast(features, tf.float32)
        return self._finish(pool_ops.roi_pool(features, rois, self.output_size, self.spatial_scale))

    def get_config(self):
        config = super().get_config()
        config["spatial_scale"] = self.spatial_scale
        return config


@keras.saving.register_keras_serializable(package="keras_det")
class RoIAlign(_RoILayer):
    """RoIAlign (Mask R-CNN), equal to ``torchvision.ops.roi_align``.

    Each of the ``out_h x out_w`` bins of a RoI is the mean of
    ``sampling_ratio x sampling_ratio`` bilinear samples on a regular grid
    inside the bin (samples more than one pixel outside the map count as 0).

    Args:
        output_size: ``(out_h, out_w)`` or an int.
        spatial_scale: feature-map pixels per input-image pixel (1/stride).
        sampling_ratio: samples per bin along each axis. ``0`` (or negative)
            means adaptive, ``ceil(roi_size / out_size)`` per RoI, like
            torchvision's ``-1``; that path is several times slower (see
            :mod:`keras_det.ops.roi_align`), whereas a fixed ratio (the default 2)
            is one ``tf.image.crop_and_resize``.
        aligned: shift boxes by -0.5 feature pixel (Detectron2 / torchvision
            ``aligned=True``). ``False`` is the legacy Mask R-CNN behaviour
            (also clamps RoI sizes to at least one feature pixel).
        **kwargs: ``keras.layers.Layer`` arguments.

    Call args:
        features: float ``[B, H, W, C]`` feature map (NHWC).
        rois: float ``[B, R, 4]`` absolute ``yxyx`` boxes in input-image
            pixels; all-zero rows (padding) are allowed and give finite values.

    Returns:
        ``[B, R, out_h, out_w, C]``. Differentiable with respect to
        ``features`` (not ``rois``).
    """

    def __init__(
        self,
        output_size=(7, 7),
        spatial_scale=1.0 / 16,
        sampling_ratio=2,
        aligned=True,
        **kwargs,
    ):
        super().__init__(output_size=output_size, **kwargs)
        self.spatial_scale = float(spatial_scale)
        self.sampling_ratio = max(int(sampling_ratio), 0)
        self.aligned = bool(aligned)

    def call(self, features, rois):
        features = tf.cast(features, tf.float32)
        out = align_ops.roi_align(
            features,
            rois,
            self.output_size,
            self.spatial_scale,
            self.sampling_ratio,
            self.aligned,
        )
        return self._finish(out)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "spatial_scale": self.spatial_scale,
                "sampling_ratio": self.sampling_ratio,
                "aligned": self.aligned,
            }
        )
        return config


def feature_level(name):
    """The level number a feature map's name ends in (``"P3"`` → 3, ``"C4"`` → 4)."""
    match = re.search(r"(\d+)$", str(name))
    if not match:
        raise ValueError(
            f"Cannot read an FPN level from feature name {name!r}; use names ending in the "
            "level number such as 'P2'..'P5', or pass a list with `levels`."
        )
    return int(match.group(1))


@keras.saving.register_keras_serializable(package="keras_det")
class MultiLevelRoIAlign(_RoILayer):
    """RoIAlign on a feature pyramid with the FPN level-assignment rule.

    A RoI of area ``A`` (input-image pixels) is pooled from level
    ``k = floor(canonical_level + log2(sqrt(A) / canonical_scale) + 1e-6)``
    clamped to the available levels (torchvision's ``LevelMapper``), whose map
    has stride ``2**k`` (``spatial_scale = 2**-k``). With ``aligned=False``
    the result equals ``torchvision.ops.MultiScaleRoIAlign`` (which always
    uses the legacy, unaligned RoIAlign).

    Args:
        output_size: ``(out_h, out_w)`` or an int.
        sampling_ratio: as in :class:`RoIAlign` (0 = adaptive, slow path).
        aligned: as in :class:`RoIAlign`.
        levels: level numbers of the maps when ``features`` is a list or
            tuple (default ``2, 3, ...``). Ignored for a dict, whose keys must
            end in the level number (``"P2"``, ``"p3"``, ``"4"``).
        canonical_level: FPN ``k0`` (4).
        canonical_scale: FPN ``s0`` (224 pixels).
        **kwargs: ``keras.layers.Layer`` arguments.

    Call args:
        features: dict ``{"P2": [B, H/4, W/4, C], ..., "P5": ...}`` or list of
            ``[B, H_l, W_l, C]`` maps, one per consecutive level, all with the
            same ``C``.
        rois: float ``[B, R, 4]`` absolute ``yxyx`` input-image pixels;
            all-zero padding rows go to the lowest level and give finite values.

    Returns:
        ``[B, R, out_h, out_w, C]``.
    """

    def __init__(
        self,
        output_size=(7, 7),
        sampling_ratio=2,
        aligned=True,
        levels=None,
        canonical_level=4,
        canonical_scale=224,
        **kwargs,
    ):
        super().__init__(output_size=output_size, **kwargs)
        self.sampling_ratio = max(int(sampling_ratio), 0)
        self.aligned = bool(aligned)
        self.levels = None if levels is None else [int(k) for k in levels]
        self.canonical_level = int(canonical_level)
        self.canonical_scale = float(canonical_scale)

    def _split(self, features):
        if isinstance(features, dict):
            names = list(features)
            return [features[n] for n in names], [feature_level(n) for n in names]
        features = list(features)
        levels = self.levels if self.levels is not None else list(range(2, 2 + len(features)))
        if len(levels) != len(features):
            raise ValueError(f"`levels`={levels} does not match {len(features)} feature maps.")
        return features, levels

    def _features_channels(self, features_shape):
        if isinstance(features_shape, dict):
            return next(iter(features_shape.values()))[-1]
        return features_shape[0][-1]

    def call(self, features, rois):
        maps, levels = self._split(features)
        maps = [tf.cast(m, tf.float32) for m in maps]
        out = align_ops.multilevel_roi_align(
            maps,
            levels,
            rois,
            output_size=self.output_size,
            sampling_ratio=self.sampling_ratio,
            aligned=self.aligned,
            canonical_level=self.canonical_level,
            canonical_scale=self.canonical_scale,
        )
        return self._finish(out)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "sampling_ratio": self.sampling_ratio,
                "aligned": self.aligned,
                "levels": self.levels,
                "canonical_level": self.canonical_level,
                "canonical_scale": self.canonical_scale,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_det")
class RoIPooler(keras.layers.Layer):
    """One RoI pooler for a single map or a pyramid (Detectron2's ``ROIPooler`` idea).

    The pooler is given the named feature maps of a detector (``{"C4": ...}``
    from a backbone tap, or ``{"P3": ..., "P6": ...}`` from an FPN) and pools
    from the ``levels`` it was built for: with one level it is
    :class:`RoIAlign` or :class:`RoIPooling` at ``spatial_scale = 2**-k`` (a
    name ending in ``k``: ``"C4"`` is stride 16); with several, RoIs are
    assigned to levels by the FPN rule of :class:`MultiLevelRoIAlign`. A
    model therefore never branches on "FPN or not" to pool.

    Args:
        output_size: ``(out_h, out_w)`` or an int.
        levels: names of the maps to pool from, each ending in its level
            number (``("C4",)``, ``("P3", "P4", "P5")``).
        kind: ``"align"`` (RoIAlign) or ``"pool"`` (RoIPooling, one level only).
        sampling_ratio, aligned: RoIAlign's (2, True).
        canonical_level, canonical_scale: the FPN level rule's ``k0`` and ``s0``.
        **kwargs: ``keras.layers.Layer`` arguments.

    Call args:
        features: dict of named maps ``[B, H_l, W_l, C]`` (more than
            ``levels`` may be given; the others are ignored).
        rois: float ``[B, R, 4]`` absolute ``yxyx`` input-image pixels
            (all-zero padding rows allowed).

    Returns:
        ``[B, R, out_h, out_w, C]``.

    Raises:
        ValueError: unknown ``kind``, ``"pool"`` on several levels, or a
            level name without a number.
    """

    def __init__(self, output_size=(7, 7), levels=("C4",), kind="align", sampling_ratio=2, aligned=True, canonical_level=4, canonical_scale=224, **kwargs):
        super().__init__(**kwargs)
        # RoIs stay float32 (no autocast), as in the RoI layers.
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        if kind not in ("align", "pool"):
            raise ValueError(f"`roi_pooling` must be 'align' or 'pool', got {kind!r}.")
        self.output_size = _size_pair(output_size)
        self.levels = tuple(str(level) for level in levels)
        if not self.levels:
            raise ValueError("RoIPooler needs at least one feature level.")
        numbers = [feature_level(level) for level in self.levels]
        self.kind = kind
        self.sampling_ratio = max(int(sampling_ratio), 0)
        self.aligned = bool(aligned)
        self.canonical_level = int(canonical_level)
        self.canonical_scale = float(canonical_scale)
        if len(self.levels) > 1:
            if kind != "align":
                raise ValueError(f"`roi_pooling`={kind!r} pools one map; several levels {self.levels} need 'align'.")
            self.roi_layer = MultiLevelRoIAlign(
                self.output_size, self.sampling_ratio, self.aligned, canonical_level=self.canonical_level,
                canonical_scale=self.canonical_scale, name="roi_align",
            )
        elif kind == "align":
            self.roi_layer = RoIAlign(self.output_size, 2.0 ** -numbers[0], self.sampling_ratio, self.aligned, name="roi_align")
        else:
            self.roi_layer = RoIPooling(self.output_size, 2.0 ** -numbers[0], name="roi_pool")

    def build(self, *args, **kwargs):
        self.built = True  # stateless; the RoI layer builds on its first call

    def call(self, features, rois):
        if len(self.levels) == 1:
            return self.roi_layer(features[self.levels[0]], rois)
        return self.roi_layer({level: features[level] for level in self.levels}, rois)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "output_size": list(self.output_size),
                "levels": list(self.levels),
                "kind": self.kind,
                "sampling_ratio": self.sampling_ratio,
                "aligned": self.aligned,
                "canonical_level": self.canonical_level,
                "canonical_scale": self.canonical_scale,
            }
        )
        return config
