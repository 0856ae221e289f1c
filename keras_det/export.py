"""One-call export of a detector to a versioned SavedModel for TF Serving.

``export_saved_model(model, "saved_models/shapes")`` writes
``saved_models/shapes/<version>/`` (the next integer version) with:

* ``serving_default``: input ``images``, a batch of encoded JPEG/PNG/BMP/GIF
  strings of any sizes (grayscale and RGBA are converted to RGB);
* ``serving_tensor``: input ``images``, uint8 ``[B, H, W, 3]``;
* outputs named as the TF Object Detection API's: ``detection_boxes``
  (float32 ``[B, K, 4]`` normalized ``[ymin, xmin, ymax, xmax]`` of each
  *original* image), ``detection_scores`` ``[B, K]``, ``detection_classes``
  (float32, **1-based** class ids as in the TF OD API, 0 in padding rows),
  ``num_detections`` (float32 ``[B]``);
* an empty batch (``[0]`` strings, ``[0, H, W, 3]`` pixels) returns empty
  outputs of the same dtypes and ranks: ``detection_boxes [0, K, 4]``,
  ``detection_scores`` / ``detection_classes [0, K]``, ``num_detections [0]``
  (``K`` the model's ``max_detections``, as in a non-empty batch), without
  running the model;
* ``assets/label_map.pbtxt`` (TF OD API label map, ids 1-based) and
  ``assets.extra/tf_serving_warmup_requests`` (PredictionLog records that TF
  Serving replays at load time).

Inside the graph each image is resized, keeping its aspect ratio, to fit
``image_size`` and padded at the bottom/right (the input size the model was
trained at), then boxes are mapped back. The SavedModel needs TensorFlow only
(no keras_det, no Keras) to load and run, as in TF Serving.
"""

import os
import re

import keras
import numpy as np
import tensorflow as tf

from keras_det.layers.relu6 import ServingReLU6, relu6_form
from keras_det.models.folding import inference_copy
from keras_det.ops import boxes as box_ops
from keras_det.ops import image as image_ops

WARMUP_FILE = "tf_serving_warmup_requests"

# The prediction dict of the data contract (what a detector's call returns).
PREDICTION_KEYS = ("boxes", "scores", "labels", "num_detections")


def check_detector(model, image_size):
    """The shapes of ``model``'s prediction dict on one ``image_size`` image (building the model).

    Raises:
        ValueError: ``model`` is not a keras_det detector (a Keras model whose
            call on ``[B, H, W, 3]`` images returns the prediction dict
            ``boxes, scores, labels, num_detections``), naming its type.
    """
    name = type(model).__name__
    if not isinstance(model, keras.Model):
        raise ValueError(f"export needs a keras_det detector (a keras.Model), got a {name}.")
    try:
        outputs = model(tf.zeros((1,) + tuple(image_size) + (3,), tf.float32), training=False)
    except Exception as error:
        # Keras wraps errors in the call ("Exception encountered when calling X.call(). <message>
        # Arguments received by ..."): keep the message, without the arguments or terminal codes.
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).split("Arguments received")[0]
        text = " ".join(text.replace(f"Exception encountered when calling {name}.call().", "").split())[:300]
        raise ValueError(
            f"export: the {name} cannot run on a {image_size[0]}x{image_size[1]} image batch "
            f"({type(error).__name__}: {text}); a keras_det detector takes [B, H, W, 3] images of its size."
        ) from error
    missing = [k for k in PREDICTION_KEYS if not isinstance(outputs, dict) or k not in outputs]
    if missing:
        if isinstance(outputs, dict):
            got = f"a dict with keys {sorted(outputs)}"
        elif hasattr(outputs, "shape"):
            got = f"a tensor of shape {tuple(outputs.shape)}"
        else:
            got = f"a {type(outputs).__name__}"
        raise ValueError(
            f"export needs a keras_det detector whose call returns the prediction dict {PREDICTION_KEYS}; "
            f"the {name} returns {got} (a classifier or segmenter is not exportable for TF Serving)."
        )
    return {k: (tuple(v.shape[1:]), tf.as_dtype(v.dtype)) for k, v in outputs.items()}


def next_version(export_dir):
    """1 + the largest integer-named subdirectory of ``export_dir`` (1 if none)."""
    if not os.path.isdir(export_dir):
        return 1
    versions = [int(d) for d in os.listdir(export_dir) if re.fullmatch(r"\d+", d)]
    return max(versions, default=0) + 1


def _label_map(class_names):
    items = []
    for i, name in enumerate(class_names):
        items.append("item {\n  id: %d\n  name: '%s'\n  display_name: '%s'\n}\n" % (i + 1, name, name))
    return "".join(items)


class _Serving:
    """The graph functions behind the serving signatures of one model."""

    def __init__(self, model, image_size, output_shapes=None):
        self.image_size = tuple(int(s) for s in image_size)
        # What is served: a copy with the backbone's BatchNorms folded into its convolutions (same outputs to
        # float32 rounding, ~10 % faster on CPU; `keras_det.models.folding`), made now from the current weights.
        self.model = inference_copy(model, tf.zeros((1,) + self.image_size + (3,), tf.float32))
        self.bounding_box_format = getattr(model, "bounding_box_format", "yxyx")
        # {key: (shape without batch, dtype)} of the model's outputs (`check_detector`):
        # with it an empty batch returns empty outputs without running the model.
        self.output_shapes = output_shapes

    def detect(self, images, factors, original_hw):
        if self.output_shapes is None:
            return self._detect(images, factors, original_hw)
        empty = {k: tf.zeros((0,) + shape, dtype) for k, (shape, dtype) in self.output_shapes.items()}
        return tf.cond(
            tf.shape(images)[0] > 0,
            lambda: self._detect(images, factors, original_hw),
            lambda: self._detect(images, factors, original_hw, outputs=empty),
        )

    def _forward(self, images):
        """The served model on ``images`` ``[B, H, W, 3]``; a batch of one runs a graph traced for batch 1 when a
        layer's graph form depends on it (`keras_det.layers.relu6`: oneDNN's batch-1 AVX2 convolutions)."""
        forms = isinstance(self.model, keras.layers.Layer) and any(
            isinstance(layer, ServingReLU6) for layer in self.model._flatten_layers())
        if images.shape[0] is not None or not forms or relu6_form(1) == relu6_form(None):
            return self.model(images, training=False)

        def batch_of_one():
            # A static shape only: the branch runs for one image. (tf.ensure_shape here fails on other
            # batches: TensorFlow checks it even where the branch is not taken.)
            one = tf.identity(images)
            one.set_shape([1] + images.shape[1:])
            return self.model(one, training=False)

        return tf.cond(tf.shape(images)[0] == 1, batch_of_one, lambda: self.model(images, training=False))

    def _detect(self, images, factors, original_hw, outputs=None):
        if outputs is None:
            outputs = self._forward(images)
        boxes = box_ops.convert_format(outputs["boxes"], self.bounding_box_format, "yxyx", image_shape=self.image_size)
        boxes = boxes / tf.tile(factors, [1, 2])[:, None, :]  # per-axis factors of ops.image.resize_pad
        hw = tf.concat([original_hw, original_hw], axis=-1)[:, None, :]
        boxes = tf.clip_by_value(boxes / hw, 0.0, 1.0)
        labels = tf.cast(outputs["labels"], tf.int32)
        valid = labels >= 0
        result = {
            "detection_boxes": tf.where(valid[..., None], boxes, 0.0),
            "detection_scores": tf.where(valid, tf.cast(outputs["scores"], tf.float32), 0.0),
            "detection_classes": tf.cast(tf.where(valid, labels + 1, 0), tf.float32),
            "num_detections": tf.cast(outputs["num_detections"], tf.float32),
        }
        if "masks" in outputs:
            result["detection_masks"] = tf.cast(outputs["masks"], tf.float32)
        return result

    def _map(self, fn, images):
        """Applies ``fn`` (one image → resized, (fy, fx) factors, hw) over a batch."""
        spec = (
            tf.TensorSpec(self.image_size + (3,), tf.float32),
            tf.TensorSpec([2], tf.float32),
            tf.TensorSpec([2], tf.float32),
        )
        return tf.map_fn(fn, images, fn_output_signature=spec)

    def serve_encoded(self, images):
        def decode(data):
            image = tf.io.decode_image(data, channels=3, expand_animations=False, dtype=tf.uint8)
            image.set_shape([None, None, 3])
            return self._resize(image)

        return self.detect(*self._map(decode, images))

    def _resize(self, image):
        """One image → (resized and padded float32, (fy, fx) factors, original (h, w))."""
        padded, factors = image_ops.resize_pad(image, self.image_size)
        return padded, factors, tf.cast(tf.shape(image)[:2], tf.float32)

    def serve_tensor(self, images):
        return self.detect(*self._map(self._resize, images))


def _write_warmup(path, examples):
    """PredictionLog records for ``serving_default`` (TF Serving's warmup format)."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    extra = os.path.join(path, "assets.extra")
    os.makedirs(extra, exist_ok=True)
    with tf.io.TFRecordWriter(os.path.join(extra, WARMUP_FILE)) as writer:
        for encoded in examples:
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(signature_name="serving_default")
            )
            request.inputs["images"].CopyFrom(tf.make_tensor_proto([encoded], dtype=tf.string))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())


def _default_warmup_images(image_size):
    rng = np.random.default_rng(0)
    images = []
    for h, w in ((image_size[0], image_size[1]), (image_size[0] // 2 + 1, image_size[1])):
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        images.append(tf.io.encode_jpeg(pixels).numpy())
    return images


def export_saved_model(model, export_dir, version=None, image_size=None, class_names=None, warmup_images=None):
    """Exports ``model`` as ``export_dir/<version>/`` for TF Serving.

    Args:
        model: a keras_det detector (its call returns the prediction dict).
        export_dir: the model's base directory (e.g. ``saved_models/shapes``).
        version: integer version; default ``next_version(export_dir)``.
        image_size: ``(height, width)`` (two positive ints, or one int for a
            square) the model runs at; defaults to ``model.image_size``.
        class_names: names for the label map (default ``class_0``, ...).
        warmup_images: encoded images for the warmup records (default: two
            generated JPEGs).

    Returns:
        The path of the written version directory.

    Raises:
        ValueError: a bad ``image_size`` or ``version``, or a ``model`` that is
            not a keras_det detector (e.g. a ``keras.Sequential``, an
            ``FCNSegmenter``, a transfer classifier), naming its type.
        FileExistsError: the version directory exists.
    """
    if image_size is None:
        image_size = getattr(model, "image_size", None)
    if image_size is None:
        raise ValueError("`image_size` (height, width) is required: the model does not define `image_size`.")
    image_size = image_ops.image_hw(image_size)
    if version is None:
        version = next_version(export_dir)
    if not isinstance(version, int) or version < 0:
        raise ValueError(f"`version` must be a non-negative integer, got {version!r}.")
    path = os.path.join(export_dir, str(version))
    if os.path.exists(path):
        raise FileExistsError(f"export version directory {path!r} already exists.")
    num_classes = getattr(model, "num_classes", None)
    if class_names is None:
        class_names = [f"class_{i}" for i in range(num_classes or 0)]
    # Variables exist only after a first call; export needs them. The call
    # also checks that the model returns the prediction dict.
    output_shapes = check_detector(model, image_size)
    # keras.export.ExportArchive (Keras' own SavedModel writer) tracks every
    # variable so that TF1-style loaders such as TF Serving's restore them all.
    serving = _Serving(model, image_size, output_shapes)
    archive = keras.export.ExportArchive()
    archive.track(serving.model)
    archive.add_endpoint(
        "serving_default", serving.serve_encoded, input_signature=[tf.TensorSpec([None], tf.string, name="images")]
    )
    archive.add_endpoint(
        "serving_tensor",
        serving.serve_tensor,
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")],
    )
    archive.write_out(path, verbose=False)
    assets = os.path.join(path, "assets")
    os.makedirs(assets, exist_ok=True)
    with open(os.path.join(assets, "label_map.pbtxt"), "w") as f:
        f.write(_label_map(class_names))
    _write_warmup(path, warmup_images or _default_warmup_images(image_size))
    return path
