import keras
import numpy as np

from keras_det.layers.ssd_extra import build_extra_layers


def test_extra_layers_halve_down_to_one_cell():
    extras = build_extra_layers((10, 10, 8), filters=(8, 4), kind="ssd")
    shapes = [tuple(o.shape[1:]) for o in extras(np.zeros((1, 10, 10, 8), np.float32))]
    # 10 -> 5 -> 3 -> 1 ('valid' 3×3 on the 3×3 map); the last filter count repeats
    assert shapes == [(5, 5, 8), (3, 3, 4), (1, 1, 4)]
    assert [tuple(o.shape[1:]) for o in build_extra_layers((10, 10, 8), 4, num_levels=1).outputs] == [(5, 5, 4)]


def test_non_square_maps_halve_until_one_cell():
    # A 'valid' 3x3 conv would need both sides >= 3: a 2x3 map (a 64x96 input at stride 32) halves instead.
    for (h, w), expected in (((2, 3), [(1, 2), (1, 1)]), ((3, 5), [(2, 3), (1, 2), (1, 1)]), ((4, 8), [(2, 4), (1, 2), (1, 1)])):
        extras = build_extra_layers((h, w, 8), filters=4)
        assert [tuple(o.shape[1:3]) for o in extras(np.zeros((1, h, w, 8), np.float32))] == expected


def test_extra_layers_round_trip_through_config():
    for kind in ("ssd", "ssdlite"):
        extras = build_extra_layers((6, 6, 8), filters=8, kind=kind)
        clone = keras.Model.from_config(extras.get_config())
        assert [layer.name for layer in clone.layers] == [layer.name for layer in extras.layers]
        clone.set_weights(extras.get_weights())
        x = np.random.default_rng(0).normal(size=(1, 6, 6, 8)).astype(np.float32)
        for a, b in zip(extras(x), clone(x)):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6)
