"""Pascal VOC average precision (VOC2007 11-point and all-point "area" AP).

Semantics of the VOC devkit (``VOCevaldet.m``, and the widely used Python
port ``voc_eval.py``), vectorised in NumPy:

* Per class, detections of all images are sorted by descending confidence
  (stable: equal scores keep the order in which they were added; the devkit
  leaves that order unspecified).
* Each detection is compared with *all* ground truth of its image and class
  (also the already matched and the difficult ones); ``ovmax`` is the best
  IoU and ``jmax`` the first ground truth reaching it.
* If ``ovmax > iou_threshold`` (strictly, 0.5): a difficult ``jmax`` makes
  the detection neither TP nor FP; otherwise the first detection to reach an
  unmatched ``jmax`` is a TP and later ones are FP (duplicates). Otherwise
  FP.
* ``npos`` counts non-difficult ground truth; recall = tp / npos, precision
  = tp / max(tp + fp, eps).
* ``use_07_metric=True``: mean over recall levels 0, 0.1, ..., 1 of the
  maximum precision at recall >= level (0 if none). ``False``: area under
  the precision envelope (VOC2010+ "all-point" AP).

Pixel convention: the devkit treats integer pixel coordinates as inclusive
and adds 1 to widths and heights in the IoU. Models and the keras_det data
pipeline produce continuous coordinates, so the default here is
``pixel_offset=False`` (IoU without ``+1``, the same box semantics as the
rest of keras_det and as COCO). ``pixel_offset=True`` reproduces the devkit
exactly on original VOC (1-based integer) annotations.
"""

import numpy as np

_EPS = np.finfo(np.float64).eps


def voc_ap(recall, precision, use_07_metric=True):
    """AP from a recall / precision curve, as the VOC devkit.

    Args:
        recall: float ``[N]`` cumulative recall in detection order.
        precision: float ``[N]`` cumulative precision in detection order.
        use_07_metric: 11-point interpolation (VOC2007) if True, else the
            area under the monotone precision envelope.

    Returns:
        float AP.
    """
    rec = np.asarray(recall, np.float64)
    prec = np.asarray(precision, np.float64)
    if use_07_metric:
        ap = 0.0
        for t in np.arange(0.0, 1.1, 0.1):
            p = np.max(prec[rec >= t]) if np.any(rec >= t) else 0.0
            ap = ap + p / 11.0
        return float(ap)
    mrec = np.concatenate([[0.0], rec, [1.0]])
    mpre = np.concatenate([[0.0], prec, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def _pair_iou_xyxy(d, g, offset):
    iw = np.maximum(np.minimum(d[:, 2], g[:, 2]) - np.maximum(d[:, 0], g[:, 0]) + offset, 0.0)
    ih = np.maximum(np.minimum(d[:, 3], g[:, 3]) - np.maximum(d[:, 1], g[:, 1]) + offset, 0.0)
    inter = iw * ih
    union = (
        (d[:, 2] - d[:, 0] + offset) * (d[:, 3] - d[:, 1] + offset)
        + (g[:, 2] - g[:, 0] + offset) * (g[:, 3] - g[:, 1] + offset)
        - inter
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / union
    return np.where(union > 0, iou, 0.0)


def voc_class_tp_fp(
    det_image_ids, det_boxes, det_scores, gt_image_ids, gt_boxes, gt_difficult,
    iou_threshold=0.5, pixel_offset=False,
):
    """TP / FP flags of one class's detections in descending-score order.

    Args:
        det_image_ids: ``[D]`` image of each detection.
        det_boxes: ``[D, 4]`` absolute ``xyxy``.
        det_scores: ``[D]``.
        gt_image_ids: ``[G]`` image of each ground-truth box.
        gt_boxes: ``[G, 4]`` absolute ``xyxy``.
        gt_difficult: ``[G]`` bool.
        iou_threshold: a detection matches when IoU > threshold.
        pixel_offset: add 1 to widths/heights (VOC devkit convention).

    Returns:
        ``(tp, fp, npos)``: float ``[D]`` flags in descending-score order and
        the number of non-difficult ground truth.
    """
    di = np.asarray(det_image_ids).reshape(-1)
    db = np.asarray(det_boxes, np.float64).reshape(-1, 4)
    ds = np.asarray(det_scores, np.float64).reshape(-1)
    gi = np.asarray(gt_image_ids).reshape(-1)
    gb = np.asarray(gt_boxes, np.float64).reshape(-1, 4)
    gdiff = np.asarray(gt_difficult).reshape(-1).astype(bool)
    npos = int(np.count_nonzero(~gdiff))
    order = np.argsort(-ds, kind="mergesort")
    di, db = di[order], db[order]
    n = di.shape[0]
    tp = np.zeros((n,), np.float64)
    fp = np.zeros((n,), np.float64)
    if n == 0:
        return tp, fp, npos
    offset = 1.0 if pixel_offset else 0.0
    # Ground truth sorted by image (stable: input order within an image).
    gorder = np.argsort(gi, kind="stable")
    gi_s, gb_s, gdiff_s = gi[gorder], gb[gorder], gdiff[gorder]
    lo = np.searchsorted(gi_s, di, side="left")
    hi = np.searchsorted(gi_s, di, side="right")
    cnt = hi - lo
    jmax = np.full((n,), -1, np.int64)
    ovmax = np.full((n,), -np.inf)
    has = np.flatnonzero(cnt > 0)
    if has.shape[0]:
        c = cnt[has]
        rep = np.repeat(has, c)
        first = np.cumsum(c) - c
        off = np.arange(int(c.sum())) - np.repeat(first, c)
        gidx = lo[rep] + off
        ov = _pair_iou_xyxy(db[rep], gb_s[gidx], offset)
        best = np.maximum.reduceat(ov, first)
        big = np.iinfo(np.int64).max
        # First ground truth (input order) reaching the best IoU.
        arg = np.minimum.reduceat(np.where(ov == np.repeat(best, c), gidx, big), first)
        ovmax[has] = best
        jmax[has] = arg
    hit = ovmax > iou_threshold
    hit_idx = np.flatnonzero(hit)
    diff_hit = gdiff_s[jmax[hit_idx]]
    cand = hit_idx[~diff_hit]
    # The first detection (in score order) to reach a ground truth is a TP.
    _, first_pos = np.unique(jmax[cand], return_index=True)
    tp[cand[first_pos]] = 1.0
    fp[cand] = 1.0
    fp[cand[first_pos]] = 0.0
    fp[~hit] = 1.0
    return tp, fp, npos


class VOCEvaluator:
    """Pascal VOC detection AP per class and mAP.

    Keras-metric-like API (``update_state`` / ``result`` / ``reset_state``);
    state is kept as NumPy arrays and evaluated in ``result()``.

    Args:
        use_07_metric: VOC2007 11-point AP (True) or all-point area AP.
        iou_threshold: a detection matches when IoU > this (0.5).
        pixel_offset: use the devkit's ``+1`` pixel widths in the IoU (for
            original integer VOC coordinates); default False (continuous
            coordinates), see the module docstring.
        bounding_box_format: format of the boxes given to ``update_state``.
        class_names: optional names for the result keys (index = label).
        image_shape: ``(height, width)``, needed only for ``rel_`` formats.
    """

    def __init__(
        self,
        use_07_metric=True,
        iou_threshold=0.5,
        pixel_offset=False,
        bounding_box_format="yxyx",
        class_names=None,
        image_shape=None,
    ):
        from keras_det.ops.boxes import check_format

        self.use_07_metric = bool(use_07_metric)
        self.iou_threshold = float(iou_threshold)
        self.pixel_offset = bool(pixel_offset)
        self.bounding_box_format = check_format(bounding_box_format)
        self.class_names = None if class_names is None else list(class_names)
        self.image_shape = image_shape
        self.reset_state()

    def reset_state(self):
        """Forgets every image seen."""
        self._gt = []
        self._dt = []
        self._next_image_id = 0

    def _to_xyxy(self, boxes):
        if hasattr(boxes, "numpy"):
            boxes = boxes.numpy()
        boxes = np.asarray(boxes)
        if self.bounding_box_format == "xyxy":
            return boxes.astype(np.float64)
        from keras_det.ops.boxes import convert_format

        out = convert_format(boxes, self.bounding_box_format, "xyxy", image_shape=self.image_shape)
        return np.asarray(out).astype(np.float64)

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Adds a batch.

        Args:
            y_true: ``{"boxes": [B, M, 4], "labels": [B, M]}`` (``-1`` =
                padding), optional ``"difficult" [B, M]`` bool. A whole
                batch element ``{"images", "bounding_boxes": {...}}`` is
                accepted too.
            y_pred: ``{"boxes": [B, K, 4], "scores": [B, K], "labels": [B, K],
                "num_detections": [B]}`` (``num_detections`` optional).
            sample_weight: unused.
        """
        del sample_weight
        if "bounding_boxes" in y_true:
            y_true = y_true["bounding_boxes"]
        np_ = lambda x: np.asarray(x.numpy() if hasattr(x, "numpy") else x)  # noqa: E731
        gl = np_(y_true["labels"]).astype(np.int64)
        if gl.ndim == 1:
            gl = gl[None]
        b, m = gl.shape
        gb = self._to_xyxy(y_true["boxes"]).reshape(b, m, 4)
        diff = y_true.get("difficult") if hasattr(y_true, "get") else None
        gd = np.zeros((b, m), bool) if diff is None else np_(diff).reshape(b, m).astype(bool)
        dl = np_(y_pred["labels"]).astype(np.int64)
        if dl.ndim == 1:
            dl = dl[None]
        k = dl.shape[1]
        if dl.shape[0] != b:
            raise ValueError(f"y_true has {b} images but y_pred has {dl.shape[0]}.")
        db = self._to_xyxy(y_pred["boxes"]).reshape(b, k, 4)
        dsc = np_(y_pred["scores"]).astype(np.float64).reshape(b, k)
        dvalid = dl >= 0
        if "num_detections" in y_pred:
            num = np_(y_pred["num_detections"]).reshape(-1)
            dvalid &= np.arange(k)[None, :] < num[:, None]
        gvalid = gl >= 0
        ids = np.arange(b) + self._next_image_id
        gimg = np.broadcast_to(ids[:, None], (b, m))
        dimg = np.broadcast_to(ids[:, None], (b, k))
        self._gt.append((gimg[gvalid], gl[gvalid], gb[gvalid], gd[gvalid]))
        self._dt.append((dimg[dvalid], dl[dvalid], db[dvalid], dsc[dvalid]))
        self._next_image_id += b

    def _name(self, label):
        if self.class_names is not None and 0 <= label < len(self.class_names):
            return str(self.class_names[label])
        return str(label)

    def per_class_ap(self):
        """``{label: AP}`` for every class with at least one non-difficult GT."""
        cat = lambda parts, i, shape: (  # noqa: E731
            np.concatenate([p[i] for p in parts]) if parts else np.zeros(shape)
        )
        gimg, glab = cat(self._gt, 0, (0,)), cat(self._gt, 1, (0,)).astype(np.int64)
        gbox, gdiff = cat(self._gt, 2, (0, 4)), cat(self._gt, 3, (0,)).astype(bool)
        dimg, dlab = cat(self._dt, 0, (0,)), cat(self._dt, 1, (0,)).astype(np.int64)
        dbox, dsc = cat(self._dt, 2, (0, 4)), cat(self._dt, 3, (0,))
        out = {}
        for c in np.unique(glab).tolist():
            gs, ds = glab == c, dlab == c
            tp, fp, npos = voc_class_tp_fp(
                dimg[ds], dbox[ds], dsc[ds], gimg[gs], gbox[gs], gdiff[gs],
                iou_threshold=self.iou_threshold, pixel_offset=self.pixel_offset,
            )
            if npos == 0:
                continue
            tp, fp = np.cumsum(tp), np.cumsum(fp)
            rec = tp / float(npos)
            prec = tp / np.maximum(tp + fp, _EPS)
            out[int(c)] = voc_ap(rec, prec, self.use_07_metric)
        return out

    def result(self):
        """``{"mAP": mean AP over classes with GT, "AP_<class>": AP, ...}``.

        ``mAP`` is 0.0 when no class has ground truth.
        """
        aps = self.per_class_ap()
        res = {"mAP": float(np.mean(list(aps.values()))) if aps else 0.0}
        for c, ap in aps.items():
            res[f"AP_{self._name(c)}"] = float(ap)
        return res
