import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from keras_det.export import WARMUP_FILE, export_saved_model, next_version
from keras_det.models.faster_rcnn import FasterRCNN

from .models.test_faster_rcnn import SMALL


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    base = str(tmp_path_factory.mktemp("saved_models") / "frcnn")
    model = FasterRCNN(3, **SMALL)
    model(np.zeros((1, 96, 96, 3), np.float32))
    path = export_saved_model(model, base, image_size=(96, 96), class_names=["a", "b", "c"])
    return model, base, path


def test_layout_versions_and_assets(exported):
    model, base, path = exported
    assert path == os.path.join(base, "1") and next_version(base) == 2
    assert os.path.isfile(os.path.join(path, "saved_model.pb"))
    assert "name: 'c'" in open(os.path.join(path, "assets", "label_map.pbtxt")).read()
    records = list(tf.data.TFRecordDataset(os.path.join(path, "assets.extra", WARMUP_FILE)))
    assert len(records) == 2
    with pytest.raises(FileExistsError):
        export_saved_model(model, base, version=1, image_size=(96, 96))


def test_tensor_signature_matches_keras_predict(exported):
    model, _, path = exported
    loaded = tf.saved_model.load(path)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 96, 96, 3), dtype=np.uint8)
    out = loaded.signatures["serving_tensor"](images=tf.constant(images))
    ref = model.predict(images.astype(np.float32), verbose=0)
    n = int(ref["num_detections"][0])
    np.testing.assert_allclose(out["detection_scores"][0, :n], ref["scores"][0, :n], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out["detection_classes"][0, :n], ref["labels"][0, :n] + 1)
    # xyxy pixels of a 96x96 image -> normalized yxyx.
    np.testing.assert_allclose(out["detection_boxes"][0, :n], ref["boxes"][0, :n][:, [1, 0, 3, 2]] / 96.0, atol=1e-4)


TF_ONLY_CLIENT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf
    path, image_path = sys.argv[1], sys.argv[2]
    data = open(image_path, "rb").read()
    with tf.compat.v1.Session(graph=tf.Graph()) as sess:
        meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], path)
        sig = meta.signature_def["serving_default"]
        fetch = {k: v.name for k, v in sig.outputs.items()}
        out = sess.run(fetch, {sig.inputs["images"].name: [data, data]})
    # TensorFlow 2.21's own `import tensorflow` imports the keras package (the
    # tf.keras alias), so only keras_det can be checked for absence; the graph
    # itself is plain TensorFlow ops, which the TF1 loader above proves.
    assert "keras_det" not in sys.modules
    print(json.dumps({k: [list(np.shape(v)), str(np.asarray(v).dtype)] for k, v in out.items()}))
    """
)


def test_tf_serving_style_load_without_keras(exported, tmp_path):
    skimage = pytest.importorskip("skimage")
    _, _, path = exported
    jpeg = tmp_path / "chelsea.jpg"
    jpeg.write_bytes(tf.io.encode_jpeg(skimage.data.chelsea()).numpy())
    script = tmp_path / "client.py"
    script.write_text(TF_ONLY_CLIENT)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    run = subprocess.run([sys.executable, str(script), path, str(jpeg)], capture_output=True, text=True, env=env, cwd=str(tmp_path))
    assert run.returncode == 0, run.stderr[-3000:]
    shapes = json.loads(run.stdout.strip().splitlines()[-1])
    assert shapes == {
        "detection_boxes": [[2, 20, 4], "float32"],
        "detection_scores": [[2, 20], "float32"],
        "detection_classes": [[2, 20], "float32"],
        "num_detections": [[2], "float32"],
    }


def test_malformed_image_is_an_invalid_argument(exported):
    _, _, path = exported
    fn = tf.saved_model.load(path).signatures["serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="(?i)image|format"):
        fn(images=tf.constant([b"not an image"]))


def test_grayscale_rgba_and_png_inputs(exported):
    _, _, path = exported
    fn = tf.saved_model.load(path).signatures["serving_default"]
    rng = np.random.default_rng(1)
    gray = tf.io.encode_png(rng.integers(0, 256, (50, 70, 1), dtype=np.uint8)).numpy()
    rgba = tf.io.encode_png(rng.integers(0, 256, (40, 30, 4), dtype=np.uint8)).numpy()
    out = fn(images=tf.constant([gray, rgba]))
    boxes = out["detection_boxes"].numpy()
    assert boxes.shape == (2, 20, 4) and boxes.min() >= 0 and boxes.max() <= 1


def test_saved_model_cli_shows_both_signatures(exported):
    _, _, path = exported
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    run = subprocess.run([cli, "show", "--dir", path, "--all"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    out = run.stdout
    for text in (
        "signature_def['serving_default']",
        "signature_def['serving_tensor']",
        "dtype: DT_STRING",
        "dtype: DT_UINT8",
        "outputs['detection_boxes']",
        "shape: (-1, 20, 4)",
        "outputs['num_detections']",
        "Method name is: tensorflow/serving/predict",
    ):
        assert text in out, text


def _other_detectors():
    from keras_det import presets
    from keras_det.models import SSD, YOLO, SlidingWindowDetector

    from .models.test_sliding_window import SMALL as WINDOW_SMALL
    from .models.test_ssd import SMALL as SSD_SMALL
    from .models.test_yolo import MS

    return [
        ("ssd", lambda: SSD(3, **SSD_SMALL)),
        ("yolo_multiscale", lambda: YOLO(3, **MS)),
        ("sliding_window", lambda: SlidingWindowDetector(3, **WINDOW_SMALL)),
        ("mask_rcnn", lambda: presets.build("mask_rcnn_test", 3)),
    ]


@pytest.mark.parametrize("name,factory", _other_detectors())
def test_every_detector_exports(name, factory, tmp_path):
    model = factory()
    path = export_saved_model(model, str(tmp_path / name), image_size=(128, 128))
    fn = tf.saved_model.load(path).signatures["serving_default"]
    png = tf.io.encode_png(np.random.default_rng(0).integers(0, 256, (100, 150, 3), dtype=np.uint8)).numpy()
    out = fn(images=tf.constant([png]))
    k = out["detection_scores"].shape[1]
    assert out["detection_boxes"].shape == (1, k, 4) and out["num_detections"].shape == (1,)
    boxes = out["detection_boxes"].numpy()
    assert boxes.min() >= 0 and boxes.max() <= 1
    if name == "mask_rcnn":  # per-detection 28x28 masks, zero in the padded slots
        masks = out["detection_masks"].numpy()
        n = int(out["num_detections"][0])
        assert masks.shape == (1, k, 28, 28) and not np.any(masks[0, n:]) and 0 <= masks.min() <= masks.max() <= 1
