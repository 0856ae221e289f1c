import numpy as np
import pytest

from keras_det.ops.matching import BalancedSampler, Matcher


def test_matcher_thresholds_and_ignore_band():
    # 4 anchors x 2 gt.
    sim = np.array([[[0.9, 0.1], [0.5, 0.6], [0.2, 0.1], [0.3, 0.69]]], np.float32)
    m = Matcher(thresholds=(0.3, 0.7), labels=(0, -1, 1))
    matches, labels = m(sim)
    np.testing.assert_array_equal(matches, [[0, 1, 0, 1]])
    np.testing.assert_array_equal(labels, [[1, -1, 0, -1]])


def test_matcher_low_quality_matches():
    # gt 1 is best matched by anchor 3 with 0.69 < 0.7 and by nothing else.
    sim = np.array([[[0.9, 0.1], [0.5, 0.6], [0.2, 0.1], [0.3, 0.69]]], np.float32)
    _, labels = Matcher((0.3, 0.7), (0, -1, 1), allow_low_quality_matches=True)(sim)
    np.testing.assert_array_equal(labels, [[1, -1, 0, 1]])
    # Ties: both anchors reaching a gt's maximum become positive.
    tie = np.array([[[0.4], [0.4], [0.1]]], np.float32)
    _, labels = Matcher((0.3, 0.7), (0, -1, 1), allow_low_quality_matches=True)(tie)
    np.testing.assert_array_equal(labels, [[1, 1, 0]])
    # A gt that overlaps nothing forces nothing.
    zero = np.zeros((1, 3, 1), np.float32)
    _, labels = Matcher((0.3, 0.7), (0, -1, 1), allow_low_quality_matches=True)(zero)
    np.testing.assert_array_equal(labels, [[0, 0, 0]])


def test_matcher_padding_and_empty_gt():
    sim = np.array([[[0.2, 0.95], [0.8, 0.9]]], np.float32)
    matches, labels = Matcher((0.5,), (0, 1))(sim, gt_valid=[[True, False]])
    np.testing.assert_array_equal(matches, [[0, 0]])
    np.testing.assert_array_equal(labels, [[0, 1]])
    matches, labels = Matcher((0.5,), (0, 1), allow_low_quality_matches=True)(np.zeros((2, 3, 0), np.float32))
    np.testing.assert_array_equal(matches, np.zeros((2, 3)))
    np.testing.assert_array_equal(labels, np.zeros((2, 3)))


def test_matcher_rejects_bad_config():
    with pytest.raises(ValueError, match="increasing"):
        Matcher((0.7, 0.3), (0, -1, 1))
    with pytest.raises(ValueError, match="len\\(thresholds\\) \\+ 1"):
        Matcher((0.3, 0.7), (0, 1))


def test_sampler_counts():
    labels = np.full((2, 1000), 0, np.int32)
    labels[0, :300] = 1  # many positives: capped at 128
    labels[1, :10] = 1  # few positives: topped up with negatives
    labels[:, 990:] = -1
    pos, neg = BalancedSampler(256, 0.5)(labels, seed=3)
    pos, neg = pos.numpy(), neg.numpy()
    np.testing.assert_array_equal(pos.sum(1), [128, 10])
    np.testing.assert_array_equal(neg.sum(1), [128, 246])
    assert not (pos & (labels != 1)).any() and not (neg & (labels != 0)).any()
    assert not (pos | neg)[:, 990:].any()
    again = BalancedSampler(256, 0.5)(labels, seed=3)
    np.testing.assert_array_equal(again[0], pos)
    other = BalancedSampler(256, 0.5)(labels, seed=4)
    assert not np.array_equal(other[0].numpy(), pos)


def test_sampler_few_negatives_and_fraction():
    labels = np.array([[1] * 20 + [0] * 5 + [-1] * 5], np.int32)
    pos, neg = BalancedSampler(16, 0.25)(labels, seed=0)
    assert pos.numpy().sum() == 4 and neg.numpy().sum() == 5
    pos, neg = BalancedSampler(512, 0.25)(labels)
    assert pos.numpy().sum() == 20 and neg.numpy().sum() == 5


def test_sampler_is_uniform():
    labels = np.zeros((1, 10), np.int32)
    labels[0, :5] = 1
    hits = np.zeros(10)
    for seed in range(400):
        pos, _ = BalancedSampler(2, 0.5)(labels, seed=seed)
        hits += pos.numpy()[0]
    # Each of the 5 positives is drawn with probability 1/5: expected 80 of 400.
    assert np.all(np.abs(hits[:5] - 80) < 30), hits
