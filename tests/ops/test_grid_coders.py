import math

import numpy as np
import pytest

from keras_det.ops.anchors import prior_grid
from keras_det.ops.grid_coders import GridCellCoder, PriorCellCoder


def test_grid_cell_coder_hand_values():
    # A 2x2 grid on 64 px: cells of 32 px; cell 3 is [32, 32, 64, 64].
    cells = prior_grid((2, 2), 32, [(32, 32)]).numpy()
    np.testing.assert_allclose(cells, [[0, 0, 32, 32], [0, 32, 32, 64], [32, 0, 64, 32], [32, 32, 64, 64]], atol=1e-5)
    coder = GridCellCoder(2)
    boxes = np.array([[4, 8, 20, 24], [40, 40, 56, 64]], np.float32)  # centres (12, 16) and (48, 52)
    values = coder.encode(boxes, cells[[0, 3]]).numpy()
    # (centre - cell corner) / 32, sqrt(size / 64).
    np.testing.assert_allclose(values, [[12 / 32, 16 / 32, 0.5, 0.5], [16 / 32, 20 / 32, 0.5, math.sqrt(24 / 64)]], rtol=1e-6)
    np.testing.assert_allclose(coder.decode(values, cells[[0, 3]]), boxes, atol=1e-4)
    # Values (0.5, 0.5, 0.25, 0.25) in cell 0: centre (16, 16), side 0.25² · 64 = 4.
    np.testing.assert_allclose(coder.decode([[0.5, 0.5, 0.25, 0.25]], cells[:1]), [[14, 14, 18, 18]], atol=1e-5)
    with pytest.raises(ValueError, match="grid_size"):
        GridCellCoder(0)


def test_prior_cell_coder_hand_values():
    # One prior 20 wide, 10 high on the stride-16 cell (0, 0): centre (8, 8).
    prior = prior_grid((1, 1), 16, [(20, 10)]).numpy()
    np.testing.assert_allclose(prior, [[3, -2, 13, 18]], atol=1e-5)
    coder = PriorCellCoder([16.0])
    # cy = 8 + (0.75 - 0.5) 16 = 12, cx = 8 + (0.25 - 0.5) 16 = 4, h = 10 (2 · 0.5)² = 10, w = 20 (2 · 1)² = 80.
    box = coder.decode([[0.75, 0.25, 0.5, 1.0]], prior).numpy()
    np.testing.assert_allclose(box, [[7, -36, 17, 44]], atol=1e-5)
    np.testing.assert_allclose(coder.encode(box, prior), [[0.75, 0.25, 0.5, 1.0]], atol=1e-6)
    # Strides are per prior: a second prior of stride 32 moves twice as far.
    priors = np.concatenate([prior, prior])
    two = PriorCellCoder([16.0, 32.0]).decode([[1.0, 0.5, 0.5, 0.5]] * 2, priors).numpy()
    np.testing.assert_allclose(two[:, 0] + two[:, 2], [2 * 16, 2 * 24], atol=1e-5)  # centres 16 and 24
