"""The composed two-stage models keep the weight-file layout of the single-class models before the parts."""

import io
import zipfile

import h5py
import keras
import numpy as np

from keras_det.models import FasterRCNN, MaskRCNN

TINY = dict(backbone="tiny", feature_tap="C3", anchor_sizes=(16, 32), aspect_ratios=(1.0,), rpn_filters=8, fc_dims=(8, 8),
            rpn_pre_nms_topk_test=50, rpn_post_nms_topk_test=16, max_detections=5, score_threshold=0.0)


def _weight_paths(path):
    with zipfile.ZipFile(path) as z, h5py.File(io.BytesIO(z.read("model.weights.h5")), "r") as f:
        found = []
        f.visititems(lambda name, obj: found.append(name) if isinstance(obj, h5py.Dataset) else None)
    return found


def _rewrite(path, out, moves):
    """Copies a .keras file, moving h5 groups ``{old: new}`` in its weights (an older layout)."""
    with zipfile.ZipFile(path) as z:
        entries = {name: z.read(name) for name in z.namelist()}
    buffer = io.BytesIO(entries["model.weights.h5"])
    with h5py.File(buffer, "a") as f:
        for source, target in moves.items():
            f.move(source, target)
    entries["model.weights.h5"] = buffer.getvalue()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)


def test_weights_stay_at_the_paths_of_the_single_class_models(tmp_path):
    images = np.random.default_rng(0).uniform(0, 255, (1, 48, 48, 3)).astype("float32")
    faster = FasterRCNN(2, **TINY)
    faster(images)
    faster.save(tmp_path / "f.keras")
    paths = _weight_paths(tmp_path / "f.keras")
    # Every variable sits where FasterRCNN(FastRCNN) stored it: backbone/, box_head/, layers/rpn_head/.
    assert {p.split("/vars")[0].split("/")[0] for p in paths} == {"backbone", "box_head", "layers"}
    assert all(p.startswith("layers/rpn_head/") for p in paths if p.startswith("layers/"))

    model = MaskRCNN(2, mask_roi_size=4, mask_conv_dims=4, mask_num_convs=1, num_keypoints=1, **TINY)
    before = model(images)
    model.save(tmp_path / "m.keras")
    assert any(p.startswith("keypoint_head/") for p in _weight_paths(tmp_path / "m.keras"))
    # A file of the older MaskRCNN kept its mask head at layers/mask_head: it loads, outputs unchanged.
    _rewrite(tmp_path / "m.keras", tmp_path / "old.keras", {"layers/ro_i_heads/mask/head": "layers/mask_head"})
    assert any(p.startswith("layers/mask_head/") for p in _weight_paths(tmp_path / "old.keras"))
    after = keras.saving.load_model(tmp_path / "old.keras")(images)
    for key in before:
        np.testing.assert_array_equal(before[key], after[key])
