import numpy as np

from keras_det.visualize import draw_detections, save_png


def test_draws_kept_boxes_only(tmp_path):
    image = np.zeros((64, 64, 3), np.uint8)
    pred = {
        "boxes": np.array([[10, 10, 40, 30], [0, 0, 5, 5], [0, 0, 0, 0]], np.float32),
        "scores": np.array([0.9, 0.1, 0.0], np.float32),
        "labels": np.array([1, 0, -1], np.int32),
    }
    out = draw_detections(image, pred, "xyxy", class_names=["a", "b"], score_threshold=0.5, color=(255, 0, 0))
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    assert out[10:31, 10:41, 0].max() == 255  # the kept box's outline is red
    assert out[40:, :, :].max() == 0  # below the box nothing is drawn
    assert out[1:4, 1:4].max() == 0  # the low-score box is not drawn
    path = save_png(out, str(tmp_path / "x" / "out.png"))
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    empty = draw_detections(image, {"boxes": np.zeros((0, 4)), "labels": np.zeros((0,), int)})
    assert empty.max() == 0
