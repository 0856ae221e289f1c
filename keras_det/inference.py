"""One way to run a trained detector on images: a ``.keras`` file or an exported SavedModel.

`load_predictor(path)` returns a `Predictor` whatever ``path`` is, and both
kinds compute the same thing: the image is resized (keeping its aspect ratio)
and padded to the model's image size, the model runs, and boxes come back
normalized to the *original* image — for a ``.keras`` file through the very
graph functions the export writes into a SavedModel
(``keras_det.export``'s ``serving_tensor``). ``keras-det predict`` and
``keras-det evaluate --model`` both call it, which is why evaluating a model
directly and evaluating its ``detections.json`` give the same numbers.
"""

import json
import os
import re

import numpy as np


def _label_map_names(path):
    """Class names of an exported ``assets/label_map.pbtxt`` in id order (None if absent)."""
    if not os.path.isfile(path):
        return None
    text = open(path, encoding="utf-8").read()
    items = re.findall(r"id:\s*(\d+)\s*name:\s*'((?:[^'\\]|\\.)*)'", text)
    return tuple(name for _, name in sorted(items, key=lambda item: int(item[0]))) or None


def saved_model_version(path):
    """``path`` if it is a SavedModel directory, else its highest integer version subfolder, else None."""
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return path
    if os.path.isdir(path):
        versions = [d for d in os.listdir(path) if d.isdigit() and os.path.isfile(os.path.join(path, d, "saved_model.pb"))]
        if versions:
            return os.path.join(path, max(versions, key=int))
    return None


def keras_class_names(model, model_path):
    """A ``.keras`` model's class names: ``model.class_names``, else ``class_names.json`` beside it, else ``class_<i>``."""
    names = getattr(model, "class_names", None)
    if names:
        return tuple(str(n) for n in names)
    beside = os.path.join(os.path.dirname(os.path.abspath(model_path)), "class_names.json")
    if os.path.isfile(beside):
        with open(beside, encoding="utf-8") as f:
            names = json.load(f)
        if isinstance(names, list) and names:
            return tuple(str(n) for n in names)
    return tuple(f"class_{i}" for i in range(int(getattr(model, "num_classes", 0) or 0)))


class Predictor:
    """Runs a detector on one uint8 image at a time.

    Attributes:
        path: the model that was loaded (for a SavedModel, the version directory).
        kind: ``"keras"`` or ``"saved_model"``.
        class_names: tuple; 1-based class ``c`` is ``class_names[c - 1]``.
        image_size: ``(height, width)`` the model runs at (None if a
            SavedModel does not say).
    """

    def __init__(self, path, kind, function, class_names, image_size):
        self.path = path
        self.kind = kind
        self._function = function
        self.class_names = tuple(class_names or ())
        self.image_size = image_size

    def __call__(self, image):
        """Detections of one image.

        Args:
            image: uint8 ``[H, W, 3]`` RGB.

        Returns:
            dict of NumPy arrays as the SavedModel signatures return them:
            ``detection_boxes [1, K, 4]`` (normalized ``yxyx`` of ``image``),
            ``detection_scores [1, K]``, ``detection_classes [1, K]``
            (1-based, 0 in padding rows), ``num_detections [1]``.
        """
        import tensorflow as tf

        out = self._function(tf.constant(np.asarray(image, np.uint8)[None]))
        return {k: v.numpy() for k, v in out.items() if k != "detection_masks"}

    def class_name(self, category_id):
        """The name of 1-based class ``category_id`` (its number if unknown)."""
        c = int(category_id)
        return self.class_names[c - 1] if 1 <= c <= len(self.class_names) else str(c)


def load_predictor(path, image_size=None):
    """Loads a ``.keras`` file or a SavedModel (version directory, or its base directory: the highest version).

    Args:
        path: the model.
        image_size: ``(height, width)`` for a ``.keras`` model that does not
            remember its training size (``model.image_size``); ignored for a
            SavedModel (its size is in its graph).

    Returns:
        A `Predictor`.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` is neither a ``.keras`` zip nor a SavedModel, or
            a ``.keras`` model has no image size and none was given; names the path.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"model {path}: no such file or folder.")
    version = saved_model_version(path) if os.path.isdir(path) else None
    if version is not None:
        import tensorflow as tf

        try:
            loaded = tf.saved_model.load(version)
        except Exception as error:  # a corrupt SavedModel: say which
            raise ValueError(f"model {version}: cannot load the SavedModel ({type(error).__name__}: {str(error).splitlines()[0][:200]}).") from error
        if "serving_tensor" not in loaded.signatures:
            raise ValueError(f"model {version}: the SavedModel has no 'serving_tensor' signature (not a keras_det export).")
        signature = loaded.signatures["serving_tensor"]

        def run(images, _loaded=loaded, _signature=signature):  # keeps the loaded object alive
            return _signature(images=images)

        names = _label_map_names(os.path.join(version, "assets", "label_map.pbtxt"))
        return Predictor(version, "saved_model", run, names, None)
    if os.path.isdir(path):
        raise ValueError(f"model {path}: a folder but not a SavedModel (no saved_model.pb in it or in a version subfolder).")
    import zipfile

    if not zipfile.is_zipfile(path):
        raise ValueError(f"model {path}: not a .keras model file (a .keras file is a zip archive) nor a SavedModel directory.")
    import keras
    import tensorflow as tf

    import keras_det.models  # noqa: F401  (registers the models for load_model)
    from keras_det.export import _Serving

    try:
        model = keras.saving.load_model(path)
    except Exception as error:
        raise ValueError(f"model {path}: cannot load the .keras file ({type(error).__name__}: {str(error).splitlines()[0][:200]}).") from error
    size = getattr(model, "image_size", None) or image_size
    if not size:
        raise ValueError(f"model {path} does not remember its image size: pass --image-size (the training size).")
    from keras_det.ops.image import image_hw

    size = image_hw(size, "--image-size", one_value_square=True)
    serving = _Serving(model, size)
    function = tf.function(serving.serve_tensor, input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)])
    return Predictor(path, "keras", function, keras_class_names(model, path), size)
