"""The numeric core of the exact COCO evaluation: matching and accumulation.

Reproduces pycocotools' ``COCOeval.evaluateImg`` and ``accumulate`` operation
by operation, so that the numbers agree to floating-point round-off (tests
check 1e-9; in practice they are bit-identical). pycocotools is not imported
here; `keras_det.metrics.coco` adds the summary and the entry points.

The evaluation is split in two separable, public steps so that it can run
distributed (e.g. a Beam ``CombineFn``):

1. :func:`match_images` / :func:`match_image` — the equivalent of
   ``COCOeval.evaluateImg`` for every (image, category) pair and every area
   range: greedy matching of score-sorted detections to ground truth at the
   ten IoU thresholds. It returns a :class:`MatchRecord`, a small picklable
   bundle of NumPy arrays. Records covering disjoint images merge by
   concatenation (:func:`merge_records`).
2. :func:`accumulate` — the equivalent of ``COCOeval.accumulate``: precision
   at the 101 recall thresholds and recall, ``[T, R, K, A, M]`` / ``[T, K,
   A, M]``; then `keras_det.metrics.coco.summarize` gives the 12 ``stats``.

pycocotools semantics reproduced (all of them matter for exactness):

* Box IoU is pycocotools' ``maskUtils.iou`` on ``[x, y, w, h]`` boxes with
  areas ``w * h``; for a crowd ground truth the union is the detection area.
* A ground truth is *ignored* for an area range when it is a crowd or its
  ``area`` field (not its box area) lies outside the closed range.
* Detections of one (image, category) are sorted by descending score with a
  stable sort (ties keep input order) and cut to the largest ``maxDets``
  (100) *before* matching; ``maxDets`` 1 and 10 reuse the same matches.
* Greedy matching per IoU threshold ``t``: a detection takes the
  not-yet-matched ground truth (crowds may be matched again) with the highest
  IoU ``>= min(t, 1 - 1e-10)``, preferring non-ignored ground truth, and on
  equal IoU the later one in input order. A detection matched to an ignored
  ground truth is ignored; an unmatched detection whose area ``w * h`` lies
  outside the area range is ignored.
* pycocotools stores the matched ground-truth *id* and tests it for
  non-zero, so a detection matched to a ground truth whose ``id`` is ``0``
  counts as unmatched. This quirk is reproduced (pass ``gt_ids``).
* Accumulation concatenates detections over images in ascending image-id
  order and sorts them by descending score with a stable sort; precision is
  made monotone from the right and read at ``np.searchsorted(recall,
  recThrs, side="left")``, 0 past the last detection; ``-1`` where a
  category has no non-ignored ground truth.
"""


import dataclasses

import numpy as np

# Parameters of pycocotools' Params.setDetParams, built the same way so the
# floating-point values are identical.
IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
MAX_DETECTIONS = (1, 10, 100)
AREA_RANGES = np.array(
    [[0**2, 1e5**2], [0**2, 32**2], [32**2, 96**2], [96**2, 1e5**2]], dtype=np.float64
)
AREA_LABELS = ("all", "small", "medium", "large")

STAT_NAMES = (
    "AP", "AP50", "AP75", "APs", "APm", "APl",
    "AR1", "AR10", "AR100", "ARs", "ARm", "ARl",
)

# pycocotools' Params.setKpParams: three area ranges, 20 detections, ten numbers.
KEYPOINT_MAX_DETECTIONS = (20,)
KEYPOINT_AREA_RANGES = np.array([[0**2, 1e5**2], [32**2, 96**2], [96**2, 1e5**2]], dtype=np.float64)
KEYPOINT_AREA_LABELS = ("all", "medium", "large")
KEYPOINT_STAT_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")


@dataclasses.dataclass(frozen=True)
class EvalParams:
    """The fixed evaluation parameters of one COCO ``iouType``.

    Attributes:
        iou_type: ``"bbox"``, ``"segm"`` or ``"keypoints"``.
        area_ranges: float64 ``[A, 2]`` closed area ranges.
        area_labels: ``A`` names (``"all"`` first).
        max_detections: the ``maxDets`` (ascending; the last is the cut).
        stat_names: names of the summary numbers.
    """

    iou_type: str
    area_ranges: np.ndarray
    area_labels: tuple
    max_detections: tuple
    stat_names: tuple


_PARAMS = {
    "bbox": EvalParams("bbox", AREA_RANGES, AREA_LABELS, MAX_DETECTIONS, STAT_NAMES),
    "segm": EvalParams("segm", AREA_RANGES, AREA_LABELS, MAX_DETECTIONS, STAT_NAMES),
    "keypoints": EvalParams("keypoints", KEYPOINT_AREA_RANGES, KEYPOINT_AREA_LABELS,
                            KEYPOINT_MAX_DETECTIONS, KEYPOINT_STAT_NAMES),
}


def eval_params(iou_type="bbox"):
    """The `EvalParams` of ``iou_type`` (pycocotools' defaults); a ValueError for another name."""
    if iou_type not in _PARAMS:
        raise ValueError(f"iou_type must be one of {', '.join(_PARAMS)}, got {iou_type!r}.")
    return _PARAMS[iou_type]

# Candidate (detection, ground truth) pairs are generated per (image,
# category) group; groups are processed in chunks of at most this many pairs
# to bound memory.
_PAIR_CHUNK = 1 << 21

_STATUS_FP, _STATUS_TP, _STATUS_IGNORED = 0, 1, 2


@dataclasses.dataclass
class MatchRecord:
    """Per-image matching results (``evaluateImg``) for a set of images.

    All fields are NumPy arrays; the record pickles cheaply. ``A`` = 4 area
    ranges (all, small, medium, large), ``T`` = 10 IoU thresholds, ``D`` =
    kept detections (at most 100 per image and category), ``C`` = categories
    with ground truth in these images.

    Attributes:
        image_ids: ``[N]`` image ids this record covers (unique).
        det_image_ids: ``[D]`` image id of each detection.
        det_category_ids: ``[D]`` category id of each detection.
        det_scores: ``[D]`` float64 scores.
        det_ranks: ``[D]`` int32 rank of the detection among those of its
            (image, category), by descending score (stable).
        det_status: ``[A, T, D]`` int8: 0 false positive, 1 true positive,
            2 ignored.
        gt_category_ids: ``[C]`` categories that have ground truth here.
        gt_counts: ``[C, A]`` int64 number of non-ignored ground truth.
        iou_type: the evaluation type (decides area ranges and ``maxDets``).
    """

    image_ids: np.ndarray
    det_image_ids: np.ndarray
    det_category_ids: np.ndarray
    det_scores: np.ndarray
    det_ranks: np.ndarray
    det_status: np.ndarray
    gt_category_ids: np.ndarray
    gt_counts: np.ndarray
    iou_type: str = "bbox"

    @property
    def num_detections(self):
        return int(self.det_scores.shape[0])


def merge_records(records):
    """Concatenates :class:`MatchRecord` s covering disjoint sets of images.

    Args:
        records: iterable of ``MatchRecord``.

    Returns:
        One ``MatchRecord`` (ground-truth counts are not yet summed per
        category; :func:`accumulate` does that).
    """
    records = list(records)
    if len(records) == 1:
        return records[0]
    if not records:
        return empty_record()
    types = sorted({r.iou_type for r in records})
    if len(types) > 1:
        raise ValueError(f"Cannot merge records of different iou types: {types}.")

    def cat(name, axis=0):
        return np.concatenate([getattr(r, name) for r in records], axis=axis)

    return MatchRecord(
        image_ids=cat("image_ids"),
        det_image_ids=cat("det_image_ids"),
        det_category_ids=cat("det_category_ids"),
        det_scores=cat("det_scores"),
        det_ranks=cat("det_ranks"),
        det_status=cat("det_status", axis=2),
        gt_category_ids=cat("gt_category_ids"),
        gt_counts=cat("gt_counts"),
        iou_type=types[0],
    )


def empty_record(iou_type="bbox"):
    """A :class:`MatchRecord` of no image (what an evaluation of nothing accumulates)."""
    a, t = len(eval_params(iou_type).area_ranges), len(IOU_THRESHOLDS)
    return MatchRecord(
        image_ids=np.zeros((0,), np.int64),
        det_image_ids=np.zeros((0,), np.int64),
        det_category_ids=np.zeros((0,), np.int64),
        det_scores=np.zeros((0,), np.float64),
        det_ranks=np.zeros((0,), np.int32),
        det_status=np.zeros((a, t, 0), np.int8),
        gt_category_ids=np.zeros((0,), np.int64),
        gt_counts=np.zeros((0, a), np.int64),
        iou_type=iou_type,
    )


def box_iou_xywh(det_boxes, gt_boxes, gt_iscrowd):
    """Element-wise IoU of paired ``[x, y, w, h]`` boxes, pycocotools' way.

    Same arithmetic, in the same order, as ``maskUtils.iou`` for boxes:
    areas are ``w * h``, the intersection is 0 unless both its width and
    height are positive, and for a crowd ground truth the union is the
    detection's area.

    Args:
        det_boxes: float64 ``[P, 4]`` xywh.
        gt_boxes: float64 ``[P, 4]`` xywh.
        gt_iscrowd: bool ``[P]``.

    Returns:
        float64 ``[P]``.
    """
    dx, dy, dw, dh = det_boxes.T
    gx, gy, gw, gh = gt_boxes.T
    w = np.minimum(dw + dx, gw + gx) - np.maximum(dx, gx)
    h = np.minimum(dh + dy, gh + gy) - np.maximum(dy, gy)
    overlap = (w > 0) & (h > 0)
    inter = w * h
    det_area = dw * dh
    union = np.where(gt_iscrowd, det_area, det_area + gw * gh - inter)
    union = np.where(overlap, union, 1.0)
    return np.where(overlap, inter / union, 0.0)


def _codes(values):
    """(sorted unique values, int64 codes of ``values`` into them)."""
    uniq, inv = np.unique(values, return_inverse=True)
    return uniq, inv.reshape(-1).astype(np.int64)


def _segments(sorted_keys):
    """Start flags, group index and start index per element of sorted keys."""
    n = sorted_keys.shape[0]
    flag = np.empty((n,), bool)
    if n:
        flag[0] = True
        np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=flag[1:])
    starts = np.flatnonzero(flag)
    group = np.cumsum(flag) - 1
    return flag, group, starts


def match_images(
    gt_image_ids,
    gt_category_ids,
    gt_boxes,
    det_image_ids,
    det_category_ids,
    det_boxes,
    det_scores,
    gt_areas=None,
    gt_iscrowd=None,
    gt_ids=None,
    image_ids=None,
    iou_type="bbox",
    gt_masks=None, det_masks=None,  # segm
    gt_keypoints=None, det_keypoints=None, sigmas=None, gt_ignore=None,  # keypoints
    det_areas=None,
):
    """Matches detections to ground truth for many images at once.

    The ``evaluateImg`` step of COCOeval for every (image, category) and
    area range, vectorised over all groups (a Python loop runs only over
    detection ranks, at most 100 iterations). The similarity is box IoU
    (``iou_type="bbox"``), mask IoU (``"segm"``, `keras_det.metrics.masks`)
    or OKS (``"keypoints"``, `keras_det.metrics.keypoints`); the matching
    rules are the same for all three.

    Args:
        gt_image_ids: ``[G]`` image id of each ground-truth box.
        gt_category_ids: ``[G]`` category id of each ground-truth box.
        gt_boxes: ``[G, 4]`` ground-truth boxes, absolute ``[x, y, w, h]``.
        det_image_ids: ``[D]`` image id of each detection.
        det_category_ids: ``[D]`` category id of each detection.
        det_boxes: ``[D, 4]`` detections, absolute ``[x, y, w, h]``.
        det_scores: ``[D]`` detection scores. For equal scores the input
            order decides (as the order of a COCO results file does).
        gt_areas: ``[G]`` the COCO ``area`` field used for area ranges;
            defaults to ``w * h``.
        gt_iscrowd: ``[G]`` crowd flags (truthy = crowd); default none.
        gt_ids: ``[G]`` annotation ids, only used for pycocotools' id-0
            quirk (see module docstring); default: all non-zero.
        image_ids: ids of all images covered (also those without boxes);
            default: the images that appear in the boxes.
        iou_type: ``"bbox"`` (default), ``"segm"`` or ``"keypoints"``;
            ``segm`` / ``keypoints`` use pycocotools' parameters of that type
            (keypoints: area ranges all / medium / large, 20 detections).
        gt_masks, det_masks: ``segm``: a `keras_det.metrics.masks.MaskSet`
            or binary ``[G, H, W]`` / ``[D, H, W]`` masks. The boxes may then
            be None.
        gt_keypoints, det_keypoints: ``keypoints``: ``[G, P, 3]`` /
            ``[D, P, 3]`` ``(x, y, v)`` absolute pixels (``v > 0`` labelled).
            ``gt_boxes`` are needed (a ground truth without labelled points
            is compared with its box, see `keras_det.metrics.keypoints`);
            ``det_boxes`` may be None.
        sigmas: ``keypoints``: ``[P]`` per-keypoint sigmas (default COCO's
            17 person sigmas).
        det_areas: ``[D]`` detection areas for the area ranges; default: box
            ``w * h`` (bbox), mask area (segm), keypoint extent (keypoints),
            as pycocotools' ``loadRes`` sets them.
        gt_ignore: ``[G]`` extra ignore flags (keypoints: default
            ``num_keypoints == 0``, i.e. no labelled keypoint).

    Returns:
        A :class:`MatchRecord`.
    """
    params = eval_params(iou_type)
    gi = np.asarray(gt_image_ids).reshape(-1)
    gc = np.asarray(gt_category_ids).reshape(-1)
    di = np.asarray(det_image_ids).reshape(-1)
    dc = np.asarray(det_category_ids).reshape(-1)
    ds = np.asarray(det_scores, dtype=np.float64).reshape(-1)
    n_gt, n_det = gi.shape[0], di.shape[0]
    if gt_boxes is None and iou_type == "segm":
        gt_boxes = np.zeros((n_gt, 4))
    if det_boxes is None and iou_type != "bbox":
        det_boxes = np.zeros((n_det, 4))
    gb = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    db = np.asarray(det_boxes, dtype=np.float64).reshape(-1, 4)
    similarity_of = _Similarity(params.iou_type, gt_masks, det_masks, gt_keypoints,
                                det_keypoints, sigmas, gb, n_gt, n_det)
    if not (gc.shape[0] == gb.shape[0] == n_gt):
        raise ValueError("gt_image_ids, gt_category_ids and gt_boxes must have the same length.")
    if not (dc.shape[0] == db.shape[0] == ds.shape[0] == n_det):
        raise ValueError(
            "det_image_ids, det_category_ids, det_boxes and det_scores must have the same length."
        )
    if gt_areas is None:
        garea = similarity_of.default_gt_areas() if iou_type == "segm" else gb[:, 2] * gb[:, 3]
    else:
        garea = np.asarray(gt_areas, np.float64).reshape(-1)
    gcrowd = (
        np.zeros((n_gt,), bool) if gt_iscrowd is None else np.asarray(gt_iscrowd).reshape(-1) != 0
    )
    gnonzero = np.ones((n_gt,), bool) if gt_ids is None else np.asarray(gt_ids).reshape(-1) != 0
    if gt_ignore is None:
        gextra = similarity_of.default_gt_ignore()
    else:
        gextra = np.asarray(gt_ignore).reshape(-1) != 0
    if det_areas is None:
        det_areas = db[:, 2] * db[:, 3] if iou_type == "bbox" else similarity_of.default_det_areas()
    det_areas = np.asarray(det_areas, np.float64).reshape(-1)
    if image_ids is None:
        image_ids = np.unique(np.concatenate([gi, di]))
    else:
        image_ids = np.asarray(image_ids).reshape(-1)

    n_area, n_thr = len(params.area_ranges), len(IOU_THRESHOLDS)
    lo, hi = params.area_ranges[:, 0], params.area_ranges[:, 1]
    max_det = params.max_detections[-1]

    # Group keys (image, category) as int64 codes.
    _, img_code = _codes(np.concatenate([gi, di]))
    _, cat_code = _codes(np.concatenate([gc, dc]))
    n_cat = int(cat_code.max()) + 1 if cat_code.size else 1
    key = img_code * n_cat + cat_code
    gkey, dkey = key[:n_gt], key[n_gt:]

    # Detections: by group, descending score (stable), cut to max_det.
    dorder = np.lexsort((-ds, dkey))
    dkey_s = dkey[dorder]
    _, dgroup, dstarts = _segments(dkey_s)
    rank = np.arange(n_det) - dstarts[dgroup] if n_det else np.zeros((0,), np.int64)
    keep = rank < max_det
    dorder, rank, dkey_s = dorder[keep], rank[keep], dkey_s[keep]
    n_keep = dorder.shape[0]
    db_s, ds_s = db[dorder], ds[dorder]
    darea = det_areas[dorder]

    # Ground truth: by group, input order kept.
    gorder = np.argsort(gkey, kind="stable")
    gkey_s = gkey[gorder]
    gb_s, garea_s = gb[gorder], garea[gorder]
    gcrowd_s, gnonzero_s = gcrowd[gorder], gnonzero[gorder]
    # ignore[a, g]: crowd (or no labelled keypoint), or area field outside the (closed) range.
    ignore = (gcrowd_s | gextra[gorder])[None, :]
    ignore = ignore | (garea_s[None, :] < lo[:, None]) | (garea_s[None, :] > hi[:, None])

    # Candidate pairs within (image, category) groups with IoU >= min threshold.
    if iou_type == "bbox":
        def pair_values(pd, pg):
            return box_iou_xywh(db_s[pd], gb_s[pg], gcrowd_s[pg])
    else:
        pair_values = similarity_of.sorted_pairs(dorder, gorder, gcrowd_s, garea_s)
    pd, pg, piou = _candidate_pairs(dkey_s, gkey_s, pair_values)

    thr = np.minimum(IOU_THRESHOLDS, 1 - 1e-10)
    outside = (darea[None, :] < lo[:, None]) | (darea[None, :] > hi[:, None])  # [A, D]
    # Unmatched detections: FP, or ignored when outside the area range.
    status = np.empty((n_area, n_thr, n_keep), np.int8)
    status[...] = np.where(outside, _STATUS_IGNORED, _STATUS_FP).astype(np.int8)[:, None, :]
    if pd.shape[0]:
        # Only detections with a candidate pair can be matched.
        cand_d, pd_c = np.unique(pd, return_inverse=True)
        matched = np.full((n_area, n_thr, cand_d.shape[0]), -1, np.int32)
        _greedy_match(pd_c.reshape(-1), pg, piou, rank[cand_d][pd_c.reshape(-1)], thr, ignore,
                      gcrowd_s, matched, len(gkey_s))
        has = matched >= 0
        mclip = np.maximum(matched, 0)
        # pycocotools stores the matched gt *id* and tests it for truth.
        dtm = has & gnonzero_s[mclip]
        dt_ignore = has & ignore[np.arange(n_area)[:, None, None], mclip]
        dt_ignore |= ~dtm & outside[:, None, cand_d]
        status[:, :, cand_d] = np.where(
            dt_ignore, _STATUS_IGNORED, np.where(dtm, _STATUS_TP, _STATUS_FP)
        ).astype(np.int8)

    # Non-ignored ground-truth counts per category and area range.
    gt_cats, gcode = _codes(gc)
    counts = np.zeros((gt_cats.shape[0], n_area), np.int64)
    if n_gt:
        not_ig = ~ignore  # in sorted order; reorder codes accordingly
        gcode_s = gcode[gorder]
        for a in range(n_area):
            counts[:, a] = np.bincount(
                gcode_s, weights=not_ig[a], minlength=gt_cats.shape[0]
            ).astype(np.int64)

    return MatchRecord(
        image_ids=image_ids,
        det_image_ids=di[dorder],
        det_category_ids=dc[dorder],
        det_scores=ds_s,
        det_ranks=rank.astype(np.int32),
        det_status=status,
        gt_category_ids=gt_cats,
        gt_counts=counts,
        iou_type=iou_type,
    )


def _points(keypoints, n):
    """Keypoints as float64 ``[n, P, 3]`` (``[0, 0, 3]`` when there are none)."""
    k = np.asarray(keypoints, np.float64)
    return k.reshape(n, -1, 3) if n else np.zeros((0, k.shape[-2] if k.ndim == 3 else 0, 3))


class _Similarity:
    """The segm / keypoints similarity of `match_images`: defaults and pair values on sorted indices.

    For ``bbox`` it holds nothing (box IoU is computed in `match_images`).
    """

    def __init__(self, iou_type, gt_masks, det_masks, gt_keypoints, det_keypoints, sigmas, gt_boxes,
                 n_gt, n_det):
        self.iou_type = iou_type
        self.gt_boxes = gt_boxes
        self.n_gt, self.n_det = n_gt, n_det
        if iou_type == "segm":
            from keras_det.metrics import masks

            if gt_masks is None or det_masks is None:
                raise ValueError("iou_type 'segm' needs gt_masks and det_masks.")
            as_set = lambda m: m if isinstance(m, masks.MaskSet) else masks.masks_from_dense(m)  # noqa: E731
            self.gt, self.det = as_set(gt_masks), as_set(det_masks)
            if len(self.gt) != n_gt or len(self.det) != n_det:
                raise ValueError(f"gt_masks / det_masks have {len(self.gt)} / {len(self.det)} masks for "
                                 f"{n_gt} ground truth / {n_det} detections.")
        elif iou_type == "keypoints":
            if gt_keypoints is None or det_keypoints is None:
                raise ValueError("iou_type 'keypoints' needs gt_keypoints and det_keypoints.")
            self.gt, self.det = _points(gt_keypoints, n_gt), _points(det_keypoints, n_det)
            self.sigmas = sigmas

    def default_gt_areas(self):
        return self.gt.areas.astype(np.float64)

    def default_det_areas(self):
        if self.iou_type == "segm":
            return self.det.areas.astype(np.float64)
        from keras_det.metrics.keypoints import keypoint_extent_areas

        return keypoint_extent_areas(self.det)

    def default_gt_ignore(self):
        if self.iou_type == "keypoints":
            return ~np.any(self.gt[:, :, 2] > 0, axis=1)
        return np.zeros((self.n_gt,), bool)

    def sorted_pairs(self, dorder, gorder, gcrowd_s, garea_s):
        """``f(pd, pg)`` → similarity of sorted detection ``pd`` and sorted ground truth ``pg``."""
        if self.iou_type == "segm":
            from keras_det.metrics.masks import mask_iou_pairs

            det, gt = self.det.take(dorder), self.gt.take(gorder)
            dbox, gbox = det.boxes(), gt.boxes()
            darea, garea = det.areas, gt.areas

            def values(pd, pg):
                out = np.zeros(pd.shape, np.float64)
                # Masks whose pixel boxes do not meet do not intersect (pycocotools tests boxes first).
                meet = ((dbox[pd, 0] <= gbox[pg, 2]) & (gbox[pg, 0] <= dbox[pd, 2])
                        & (dbox[pd, 1] <= gbox[pg, 3]) & (gbox[pg, 1] <= dbox[pd, 3]))
                sel = np.flatnonzero(meet)
                out[sel] = mask_iou_pairs(det, pd[sel], gt, pg[sel], gcrowd_s[pg[sel]], darea, garea)
                return out

            return values
        from keras_det.metrics.keypoints import oks_pairs

        det, gt, gboxes = self.det[dorder], self.gt[gorder], self.gt_boxes[gorder]

        def values(pd, pg):
            return oks_pairs(det, gt, gboxes, garea_s, pd, pg, self.sigmas)

        return values


def match_image(
    image_id,
    gt_boxes,
    gt_category_ids,
    det_boxes,
    det_scores,
    det_category_ids,
    gt_areas=None,
    gt_iscrowd=None,
    gt_ids=None,
    **kwargs,
):
    """Matches the detections of one image (all categories).

    Args:
        image_id: the image's id (records are merged in ascending id order,
            which decides ties between equal scores of different images).
        gt_boxes: ``[G, 4]`` absolute ``[x, y, w, h]``.
        gt_category_ids: ``[G]``.
        det_boxes: ``[D, 4]`` absolute ``[x, y, w, h]``.
        det_scores: ``[D]``.
        det_category_ids: ``[D]``.
        gt_areas, gt_iscrowd, gt_ids: as in :func:`match_images`.
        **kwargs: the other arguments of :func:`match_images` (``iou_type``,
            masks, keypoints, ...).

    Returns:
        A :class:`MatchRecord` for this image.
    """
    g = np.asarray(gt_category_ids).reshape(-1)
    d = np.asarray(det_category_ids).reshape(-1)
    return match_images(
        np.full(g.shape, image_id),
        g,
        gt_boxes,
        np.full(d.shape, image_id),
        d,
        det_boxes,
        det_scores,
        gt_areas=gt_areas,
        gt_iscrowd=gt_iscrowd,
        gt_ids=gt_ids,
        image_ids=np.asarray([image_id]),
        **kwargs,
    )


def _candidate_pairs(dkey_s, gkey_s, pair_values):
    """All (det, gt) pairs of the same group with IoU >= the lowest threshold.

    ``pair_values(pd, pg)`` gives the IoU (or OKS) of sorted detections
    ``pd`` and sorted ground truth ``pg`` (int arrays of one length).

    Returns index arrays into the sorted detections / ground truth and the
    IoU, ordered by group, then detection rank, then ground-truth order.
    """
    empty = (np.zeros((0,), np.int64), np.zeros((0,), np.int64), np.zeros((0,), np.float64))
    if not dkey_s.shape[0] or not gkey_s.shape[0]:
        return empty
    du, dstart, dcount = np.unique(dkey_s, return_index=True, return_counts=True)
    gu, gstart, gcount = np.unique(gkey_s, return_index=True, return_counts=True)
    _, di_, gi_ = np.intersect1d(du, gu, assume_unique=True, return_indices=True)
    if not di_.shape[0]:
        return empty
    nd, ng = dcount[di_].astype(np.int64), gcount[gi_].astype(np.int64)
    d0, g0 = dstart[di_].astype(np.int64), gstart[gi_].astype(np.int64)
    npairs = nd * ng
    tmin = min(float(IOU_THRESHOLDS.min()), 1 - 1e-10)
    # Chunk boundaries over groups.
    cum = np.cumsum(npairs)
    bounds = [0]
    while bounds[-1] < len(npairs):
        start_total = cum[bounds[-1] - 1] if bounds[-1] else 0
        nxt = int(np.searchsorted(cum, start_total + _PAIR_CHUNK, side="right"))
        bounds.append(max(nxt, bounds[-1] + 1))
    out_d, out_g, out_iou = [], [], []
    for s, e in zip(bounds[:-1], bounds[1:]):
        cnt = npairs[s:e]
        total = int(cnt.sum())
        grp = np.repeat(np.arange(e - s), cnt)
        first = np.cumsum(cnt) - cnt
        off = np.arange(total) - first[grp]
        ngr = ng[s:e][grp]
        pdi = d0[s:e][grp] + off // ngr
        pgi = g0[s:e][grp] + off % ngr
        iou = pair_values(pdi, pgi)
        sel = iou >= tmin
        out_d.append(pdi[sel])
        out_g.append(pgi[sel])
        out_iou.append(iou[sel])
    return np.concatenate(out_d), np.concatenate(out_g), np.concatenate(out_iou)


def _greedy_match(pd, pg, piou, prank, thr, ignore, gcrowd, matched, n_gt):
    """pycocotools' greedy matching, vectorised over groups, areas, thresholds.

    Detections of equal rank belong to different (image, category) groups,
    so they never compete for the same ground truth and are matched in one
    vectorised step; ranks are processed in increasing order.

    Args:
        pd, pg, piou: candidate pairs (detection index into ``matched``,
            ground-truth index, IoU), ordered by detection then ground truth.
        prank: rank of each pair's detection within its group.

    Writes ``matched[a, t, d]`` = index of the matched ground truth or -1.
    """
    n_area, n_thr = ignore.shape[0], thr.shape[0]
    taken = np.zeros((n_area, n_thr, n_gt), bool)
    order = np.argsort(prank, kind="stable")
    pd, pg, piou, prank = pd[order], pg[order], piou[order], prank[order]
    _, _, rstarts = _segments(prank)
    rends = np.r_[rstarts[1:], prank.shape[0]]
    for s, e in zip(rstarts, rends):
        d, g, v = pd[s:e], pg[s:e], piou[s:e]
        _, seg, starts = _segments(d)
        crowd = gcrowd[g]
        valid = (v[None, None, :] >= thr[None, :, None]) & (~taken[:, :, g] | crowd)  # [A,T,P]
        nonig = ~ignore[:, g][:, None, :]  # [A,1,P]
        valid_nonig = valid & nonig
        any_nonig = np.logical_or.reduceat(valid_nonig, starts, axis=2)  # [A,T,S]
        # Prefer non-ignored ground truth when one is available.
        eligible = np.where(any_nonig[:, :, seg], valid_nonig, valid)
        keyed = np.where(eligible, v[None, None, :], -1.0)
        best = np.maximum.reduceat(keyed, starts, axis=2)
        cand = eligible & (keyed == best[:, :, seg])
        # Among equal IoU the later ground truth (in input order) wins.
        chosen = np.maximum.reduceat(np.where(cand, g[None, None, :], -1), starts, axis=2)
        matched[:, :, d[starts]] = chosen
        aa, tt, ss = np.nonzero(chosen >= 0)
        taken[aa, tt, chosen[aa, tt, ss]] = True


def accumulate(records, category_ids=None):
    """Precision / recall tables from matching records (``COCOeval.accumulate``).

    Args:
        records: a :class:`MatchRecord` or an iterable of them covering
            disjoint images.
        category_ids: categories to evaluate (pycocotools: those of the
            ground-truth file); default: every category seen. Detections of
            other categories are dropped.

    Returns:
        dict with ``"precision"`` float64 ``[T, R, K, A, M]``, ``"recall"``
        float64 ``[T, K, A, M]`` (``-1`` where a category has no non-ignored
        ground truth) and ``"category_ids"`` ``[K]`` (sorted).

    Raises:
        ValueError: if two records cover the same image.
    """
    rec = records if isinstance(records, MatchRecord) else merge_records(records)
    params = eval_params(rec.iou_type)
    max_dets = params.max_detections
    img_u, img_n = np.unique(rec.image_ids, return_counts=True)
    if np.any(img_n > 1):
        dup = img_u[img_n > 1][:5].tolist()
        raise ValueError(f"Records to accumulate cover the same image more than once: {dup}.")
    if category_ids is None:
        cats = np.unique(np.concatenate([rec.gt_category_ids, rec.det_category_ids]))
    else:
        cats = np.unique(np.asarray(category_ids).reshape(-1))
    n_thr, n_rec = len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS)
    n_cat, n_area, n_max = len(cats), len(params.area_ranges), len(max_dets)
    precision = -np.ones((n_thr, n_rec, n_cat, n_area, n_max))
    recall = -np.ones((n_thr, n_cat, n_area, n_max))
    result = {"precision": precision, "recall": recall, "category_ids": cats, "iou_type": rec.iou_type}
    if n_cat == 0:
        return result

    def lookup(values):
        pos = np.searchsorted(cats, values)
        posc = np.minimum(pos, n_cat - 1)
        return posc, (pos < n_cat) & (cats[posc] == values)

    npig = np.zeros((n_cat, n_area), np.int64)
    gk, gok = lookup(rec.gt_category_ids)
    np.add.at(npig, gk[gok], rec.gt_counts[gok])

    dk, dok = lookup(rec.det_category_ids)
    dsel = np.flatnonzero(dok)
    dk = dk[dsel]
    img_code = np.searchsorted(img_u, rec.det_image_ids[dsel])
    ranks = rec.det_ranks[dsel]
    # Category, then descending score; ties by image id then rank in image
    # (= pycocotools' concatenation order + stable mergesort).
    order = np.lexsort((ranks, img_code, -rec.det_scores[dsel], dk))
    dsel, dk, ranks = dsel[order], dk[order], ranks[order]
    status_all = rec.det_status[:, :, dsel]
    kstart = np.searchsorted(dk, np.arange(n_cat), side="left")
    kend = np.searchsorted(dk, np.arange(n_cat), side="right")
    eps = np.spacing(1)

    # Exact shortcut of pycocotools' per-threshold loop. With tp / fp / ignored
    # counts up to each detection, pr = tp / (tp + fp + eps) rises only at
    # true positives and never rises in between, so the right-to-left
    # envelope at a true positive is the maximum of pr over this and later
    # true positives. The recall read-out searchsorted(tp / npig, thr, "left")
    # lands on the c-th true positive, c = min{j : j / npig >= thr} (same float
    # division), or on the first detection when c = 0, whose envelope is the
    # maximum over all true positives (0 if none). Only the true positives of
    # each (area, threshold) row are therefore needed; the values computed are
    # the same floating-point expressions, so the result is bit-identical.
    for k in range(n_cat):
        areas = np.flatnonzero(npig[k] > 0)
        if not areas.shape[0]:
            continue
        n_a = areas.shape[0]
        st_k = status_all[:, :, kstart[k]:kend[k]][areas]
        rk = ranks[kstart[k]:kend[k]]
        npig_k = npig[k, areas]
        # c[a, r]: true positives needed to reach recall threshold r.
        need = np.stack([
            np.searchsorted(np.arange(n + 1, dtype=np.float64) / n, RECALL_THRESHOLDS, side="left")
            for n in npig_k.tolist()
        ])  # [A', R]
        need_rows = np.repeat(need, n_thr, axis=0)  # [A' * T, R]
        npig_rows = np.repeat(npig_k, n_thr)  # [A' * T]
        prev_n = -1
        for m, max_det in enumerate(max_dets):
            st = st_k if max_det >= max_dets[-1] else st_k[:, :, rk < max_det]
            nd = st.shape[2]
            if nd == 0:
                recall[:, k, areas, m] = 0.0
                precision[:, :, k, areas, m] = 0.0
                continue
            if nd == prev_n:
                # Same detections as the previous (smaller) maxDets: same numbers.
                recall[:, k, areas, m] = recall[:, k, areas, m - 1]
                precision[:, :, k, areas, m] = precision[:, :, k, areas, m - 1]
                continue
            prev_n = nd
            st2 = st.reshape(n_a * n_thr, nd)
            is_tp = st2 == _STATUS_TP
            rows, pos = np.nonzero(is_tp)
            n_tp = np.bincount(rows, minlength=n_a * n_thr)  # [A' * T]
            recall[:, k, areas, m] = (n_tp.astype(np.float64) / npig_rows).reshape(n_a, n_thr).T
            q = np.zeros((n_a * n_thr, n_rec))
            if rows.shape[0]:
                # tp + fp at each true positive = non-ignored detections so far.
                counted = np.cumsum(st2 != _STATUS_IGNORED, axis=1, dtype=np.int64)[rows, pos]
                col = np.arange(rows.shape[0]) - (np.cumsum(n_tp) - n_tp)[rows]
                pr = (col + 1).astype(np.float64) / (counted.astype(np.float64) + eps)
                env = np.full((n_a * n_thr, int(n_tp.max())), -1.0)
                env[rows, col] = pr
                env = np.maximum.accumulate(env[:, ::-1], axis=1)[:, ::-1]
                idx = np.maximum(need_rows - 1, 0)
                ok = (need_rows <= n_tp[:, None]) & (n_tp[:, None] > 0)
                q = np.where(ok, np.take_along_axis(env, np.minimum(idx, env.shape[1] - 1), 1), 0.0)
            precision[:, :, k, areas, m] = q.reshape(n_a, n_thr, n_rec).transpose(1, 2, 0)
    return result
