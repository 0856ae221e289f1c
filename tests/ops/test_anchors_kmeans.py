import numpy as np
import pytest

from keras_det.ops.anchors import kmeans_anchor_sizes, kmeans_anchors


def test_kmeans_recovers_three_separated_clusters():
    rng = np.random.default_rng(1)
    centres = np.array([[10.0, 12.0], [60.0, 30.0], [150.0, 220.0]])
    wh = np.concatenate([c * rng.uniform(0.93, 1.07, (50, 2)) for c in centres])
    rng.shuffle(wh)
    got = kmeans_anchors(wh, k=3, seed=0)
    assert got.shape == (3, 2) and got.dtype == np.float32
    np.testing.assert_allclose(got, centres, rtol=0.05)  # sorted by area: same order
    # Another seed converges to the same clusters.
    np.testing.assert_allclose(kmeans_anchors(wh, k=3, seed=7), got, rtol=1e-5)


def test_kmeans_uses_iou_not_euclidean_distance():
    # Same shape at two scales: 1 - IoU separates them although small boxes are
    # close in pixels; with k=2 each scale gets its own prior.
    wh = np.array([[4, 4], [4.2, 4.2], [3.8, 3.8], [8, 8], [8.4, 8.4], [7.6, 7.6]])
    np.testing.assert_allclose(kmeans_anchors(wh, k=2, seed=3), [[4, 4], [8, 8]], rtol=1e-5)


def test_kmeans_errors():
    with pytest.raises(ValueError, match="at least"):
        kmeans_anchors([[1, 1]], k=2)
    with pytest.raises(ValueError, match="positive"):
        kmeans_anchors([[1, 0], [2, 2]], k=1)


def test_kmeans_anchor_sizes_hand_computed():
    # (10, 20) and (20, 10): IoU = 100 / (200 + 200 - 100) = 1/3, but each has
    # IoU <= 200 / 10000 with the large boxes, so they form one cluster with
    # mean (15, 15) -> size 15; (100, 100), (90, 110) -> mean (95, 105) ->
    # size sqrt(95 * 105) = sqrt(9975).
    wh = np.array([[100, 100], [10, 20], [90, 110], [20, 10]], np.float64)
    for seed in (0, 1, 5):
        got = kmeans_anchor_sizes(wh, k=2, seed=seed)
        assert got.dtype == np.float32 and got.shape == (2,)
        np.testing.assert_allclose(got, [15.0, np.sqrt(9975.0)], rtol=1e-6)
    with pytest.raises(ValueError, match="at least k=3"):
        kmeans_anchor_sizes(wh[:2], k=3)
