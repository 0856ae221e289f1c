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


def test_label_background_stays_inside_the_image_at_the_top_edge():
    """A box at y=0: its filled label is drawn inside the image (below the edge), in the class colour."""
    from keras_det.visualize import class_color

    image = np.zeros((120, 160, 3), np.uint8)
    pred = {"boxes": np.array([[20, 0, 100, 60]], np.float32), "scores": np.array([0.87]), "labels": np.array([2])}
    out = draw_detections(image, pred, "xyxy", class_names=["a", "b", "cat"])
    color = np.array(class_color(2))
    filled = np.all(out == color, axis=-1)
    # Row 1, just below the box's top line: the label background runs from the box's left side.
    right = 20 + int(np.argmin(filled[1, 20:])) - 1
    assert right - 20 > 15
    rows = np.flatnonzero(filled[:60, right])  # the background's right edge column
    assert rows.min() == 0 and 6 <= rows.size < 30  # starts at the top edge, inside the image, a few px tall
    block = filled[rows.min():rows.max() + 1, 21:right]
    assert not block.all()  # the text is drawn on it


def test_label_near_the_right_edge_is_shifted_inside():
    image = np.zeros((100, 100, 3), np.uint8)
    pred = {"boxes": np.array([[90, 40, 99, 60]], np.float32), "scores": np.array([0.5]), "labels": np.array([0])}
    out = draw_detections(image, pred, "xyxy", class_names=["a_long_name"])
    color = np.array(__import__("keras_det.visualize", fromlist=["class_color"]).class_color(0))
    cols = np.flatnonzero(np.all(out == color, axis=-1).any(axis=0))
    assert cols.min() < 60 and cols.max() == 99  # label moved left of the box, right edge still inside


def test_colours_differ_per_class_and_lines_scale_with_the_image():
    from keras_det.visualize import class_color, drawing_scale

    colors = {class_color(i) for i in range(20)}
    assert len(colors) == 20
    image = np.zeros((64, 64, 3), np.uint8)
    pred = {"boxes": np.array([[5, 20, 30, 60], [35, 20, 60, 60]], np.float32), "scores": np.array([0.9, 0.9]),
            "labels": np.array([0, 1])}
    out = draw_detections(image, pred, "xyxy")
    assert tuple(out[40, 5]) == class_color(0) and tuple(out[40, 35]) == class_color(1)  # left edges
    assert drawing_scale(64, 64)[0] == 1 and drawing_scale(480, 640)[0] == 2 and drawing_scale(1200, 1600)[0] == 4
    big = draw_detections(np.zeros((600, 600, 3), np.uint8), {"boxes": np.array([[100, 100, 400, 400]]), "labels": np.array([0])})
    assert np.all(big[250, 100:102] == class_color(0)) and not np.all(big[250, 103] == class_color(0))  # 2 px wide
