import numpy as np
import pytest

from keras_det.metrics import VOCEvaluator
from keras_det.metrics.voc import voc_ap, voc_class_tp_fp


def _batch():
    """Hand-made case (xyxy). Class 0: image 0 has GT A and a difficult GT B,
    image 1 has GT C; npos = 2. Detections by score:
      d1 0.9 img0 = A            -> TP
      d2 0.8 img0 = B (difficult) -> neither TP nor FP
      d3 0.7 img0 = A again      -> FP (duplicate)
      d4 0.6 img1 no overlap     -> FP
      d5 0.5 img1 IoU 0.9 with C -> TP
    tp = 1 1 1 1 2, fp = 0 0 1 2 2, rec = .5 .5 .5 .5 1, prec = 1 1 .5 1/3 .5
    11-point: recall 0..0.5 -> 1 (6 points), 0.6..1 -> 0.5 (5 points): 8.5 / 11
    area: 0.5 * 1 + 0.5 * 0.5 = 0.75
    Class 1: only a difficult GT -> not evaluated. Class 2: one GT, no detection -> AP 0.
    """
    y_true = {
        "boxes": np.array([
            [[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50], [0, 0, 0, 0]],
            [[0, 0, 10, 10], [5, 5, 9, 9], [0, 0, 0, 0], [0, 0, 0, 0]],
        ], np.float32),
        "labels": np.array([[0, 0, 1, -1], [0, 2, -1, -1]]),
        "difficult": np.array([[False, True, True, False], [False, False, False, False]]),
    }
    y_pred = {
        "boxes": np.array([
            [[0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 10, 10], [0, 0, 1, 1]],
            [[50, 50, 60, 60], [0, 0, 10, 9], [0, 0, 0, 0], [0, 0, 0, 0]],
        ], np.float32),
        "scores": np.array([[0.9, 0.8, 0.7, 0.99], [0.6, 0.5, 0.0, 0.0]], np.float32),
        "labels": np.array([[0, 0, 0, 0], [0, 0, -1, -1]]),
        "num_detections": np.array([3, 2]),  # the 0.99 row of image 0 is padding
    }
    return y_true, y_pred


def test_hand_computed_07_and_area_ap():
    y_true, y_pred = _batch()
    ev07 = VOCEvaluator(use_07_metric=True, bounding_box_format="xyxy", class_names=["a", "b", "c"])
    ev07.update_state(y_true, y_pred)
    res = ev07.result()
    assert set(res) == {"mAP", "AP_a", "AP_c"}
    assert res["AP_a"] == pytest.approx(8.5 / 11, abs=1e-12)
    assert res["AP_c"] == 0.0
    assert res["mAP"] == pytest.approx((8.5 / 11) / 2, abs=1e-12)
    ev = VOCEvaluator(use_07_metric=False, bounding_box_format="xyxy")
    ev.update_state(y_true, y_pred)
    assert ev.result()["AP_0"] == pytest.approx(0.75, abs=1e-12)
    ev.reset_state()
    assert ev.result() == {"mAP": 0.0}


def test_yxyx_input_and_split_batches_give_the_same_numbers():
    y_true, y_pred = _batch()
    sw = lambda b: b[..., [1, 0, 3, 2]]  # noqa: E731
    ev = VOCEvaluator(bounding_box_format="yxyx")
    for i in range(2):
        ev.update_state({k: v[i:i + 1] for k, v in dict(y_true, boxes=sw(y_true["boxes"])).items()},
                        {k: v[i:i + 1] for k, v in dict(y_pred, boxes=sw(y_pred["boxes"])).items()})
    assert ev.result()["AP_0"] == pytest.approx(8.5 / 11, abs=1e-12)


def test_pixel_offset_convention():
    # GT [0,0,10,10], det [0,0,10,5]: IoU 50/100 = 0.5 (not > 0.5) without the
    # +1 convention; (11*6)/(11*11) = 0.545 with it.
    args = ([0], [[0, 0, 10, 5]], [1.0], [0], [[0, 0, 10, 10]], [False])
    tp, fp, npos = voc_class_tp_fp(*args)
    assert (tp.tolist(), fp.tolist(), npos) == ([0.0], [1.0], 1)
    tp, fp, _ = voc_class_tp_fp(*args, pixel_offset=True)
    assert (tp.tolist(), fp.tolist()) == ([1.0], [0.0])


def test_best_overlap_already_taken_is_a_false_positive():
    # Devkit semantics: a detection whose best GT is taken is FP even if it
    # overlaps another free GT by > 0.5.
    gt = [[0, 0, 10, 10], [0, 0, 10, 12]]
    dets = [[0, 0, 10, 10], [0, 0, 10, 10.5]]
    tp, fp, npos = voc_class_tp_fp([0, 0], dets, [0.9, 0.8], [0, 0], gt, [False, False])
    assert tp.tolist() == [1.0, 0.0] and fp.tolist() == [0.0, 1.0] and npos == 2


def test_voc_ap_curves():
    assert voc_ap([], [], True) == 0.0
    assert voc_ap([], [], False) == 0.0
    assert voc_ap([1.0], [1.0], True) == pytest.approx(1.0)
    assert voc_ap([0.5, 1.0], [1.0, 0.5], False) == pytest.approx(0.75)


def _loop_reference(gts, dets, use_07, offset):
    """Straightforward per-detection loop of the devkit rules (test oracle).

    gts: list of (image, label, box, difficult); dets: list of (image, label, box, score).
    """
    aps = {}
    for c in sorted({g[1] for g in gts}):
        recs = {}
        for img, lab, box, diff in gts:
            if lab == c:
                recs.setdefault(img, []).append([box, diff, False])
        npos = sum(not d for r in recs.values() for _, d, _ in r)
        if npos == 0:
            continue
        cd = [d for d in dets if d[1] == c]
        cd = [cd[i] for i in np.argsort([-d[3] for d in cd], kind="mergesort")]
        tp, fp = [], []
        for img, _, b, _ in cd:
            best, arg = -np.inf, -1
            for j, (g, _, _) in enumerate(recs.get(img, [])):
                iw = max(min(b[2], g[2]) - max(b[0], g[0]) + offset, 0.0)
                ih = max(min(b[3], g[3]) - max(b[1], g[1]) + offset, 0.0)
                inter = iw * ih
                uni = ((b[2] - b[0] + offset) * (b[3] - b[1] + offset)
                       + (g[2] - g[0] + offset) * (g[3] - g[1] + offset) - inter)
                ov = inter / uni
                if ov > best:
                    best, arg = ov, j
            if best > 0.5:
                r = recs[img][arg]
                if r[1]:
                    tp.append(0), fp.append(0)
                elif not r[2]:
                    r[2] = True
                    tp.append(1), fp.append(0)
                else:
                    tp.append(0), fp.append(1)
            else:
                tp.append(0), fp.append(1)
        tp, fp = np.cumsum(tp, dtype=float), np.cumsum(fp, dtype=float)
        aps[c] = voc_ap(tp / npos, tp / np.maximum(tp + fp, np.finfo(np.float64).eps), use_07)
    return aps


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("use_07,offset", [(True, False), (False, True)])
def test_random_against_loop_reference(seed, use_07, offset):
    rng = np.random.default_rng(seed)
    B, M, K, C = 12, 6, 15, 3
    xy = rng.integers(0, 80, (B, M, 2))
    wh = rng.integers(1, 40, (B, M, 2))
    gboxes = np.concatenate([xy, xy + wh], -1).astype(np.float32)
    glab = rng.integers(-1, C, (B, M))
    gdiff = rng.random((B, M)) < 0.2
    src = rng.integers(0, M, (B, K))
    jit = rng.integers(-4, 5, (B, K, 4))
    dboxes = (np.take_along_axis(gboxes, src[..., None], 1) + jit).astype(np.float32)
    dboxes[..., 2:] = np.maximum(dboxes[..., 2:], dboxes[..., :2] + 1)
    dlab = np.where(rng.random((B, K)) < 0.8, np.take_along_axis(np.maximum(glab, 0), src, 1),
                    rng.integers(0, C, (B, K)))
    dscore = rng.choice([0.1, 0.3, 0.5, 0.7, 0.9], (B, K)).astype(np.float32)  # many ties
    ev = VOCEvaluator(use_07_metric=use_07, pixel_offset=offset, bounding_box_format="xyxy")
    ev.update_state({"boxes": gboxes, "labels": glab, "difficult": gdiff},
                    {"boxes": dboxes, "scores": dscore, "labels": dlab})
    gts = [(b, int(glab[b, m]), gboxes[b, m].astype(float).tolist(), bool(gdiff[b, m]))
           for b in range(B) for m in range(M) if glab[b, m] >= 0]
    dets = [(b, int(dlab[b, k]), dboxes[b, k].astype(float).tolist(), float(dscore[b, k]))
            for b in range(B) for k in range(K)]
    ref = _loop_reference(gts, dets, use_07, 1.0 if offset else 0.0)
    got = ev.per_class_ap()
    assert set(got) == set(ref)
    for c in ref:
        assert got[c] == pytest.approx(ref[c], abs=1e-12)
