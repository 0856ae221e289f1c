"""TensorFlow Lite conversion of keras_det detectors.

``convert_tflite(model_or_saved_model, "model.tflite", image_size=(320, 320))``
converts at a **fixed** input size ``[batch, H, W, 3]``:

* from a Keras detector: the model's own call (``model(images,
  training=False)``, float32 pixels 0..255 in, the prediction dict out:
  ``boxes`` in the model's ``bounding_box_format``, ``scores``, ``labels``,
  ``num_detections``), traced as a concrete function;
* from a SavedModel written by `keras_det.export.export_saved_model`: its
  ``serving_tensor`` signature retraced at the fixed shape (uint8 in, the TF
  OD API outputs ``detection_boxes`` normalized ``yxyx`` etc. out).

The graph is frozen first and ``EnsureShape`` nodes (``tf.ensure_shape``
run-time assertions, e.g. in ``keras_det.ops.nms``) become ``Identity``:
they have no TFLite builtin. TFLite builtins cover the convolutions, box
decoding and ``NonMaxSuppressionV4/V5`` (the padded NMS); ops
without a builtin kernel (e.g. ``CropAndResize`` for RoIAlign in two-stage
models) need the Flex delegate (``SELECT_TF_OPS``, linked into the
``tensorflow`` pip package's interpreter; on device it needs the
``tensorflow-lite-select-tf-ops`` library). ``select_tf_ops="auto"`` first
tries builtins only and falls back to builtins + select TF ops; the ops
used are reported by `convert_tflite` (``info["select_tf_ops"]``).
"""

import os

import numpy as np
import tensorflow as tf


def _keras_function(model, image_size, batch_size):
    spec = tf.TensorSpec([batch_size, int(image_size[0]), int(image_size[1]), 3], tf.float32, name="images")

    @tf.function(input_signature=[spec])
    def serve(images):
        out = model(images, training=False)
        return {k: v for k, v in out.items()}

    return serve.get_concrete_function(), model


def _saved_model_function(path, image_size, batch_size, signature):
    loaded = tf.saved_model.load(path)
    fn = loaded.signatures[signature]
    dtype = fn.structured_input_signature[1]["images"].dtype
    spec = tf.TensorSpec([batch_size, int(image_size[0]), int(image_size[1]), 3], dtype, name="images")

    @tf.function(input_signature=[spec])
    def serve(images):
        return fn(images=images)

    return serve.get_concrete_function(), loaded


def _strip_ensure_shape(concrete):
    """Freezes ``concrete`` and turns ``EnsureShape`` nodes into ``Identity``.

    ``tf.ensure_shape`` (a run-time shape assertion; the static shape is
    already known after tracing) has no TFLite builtin, and would otherwise
    pull in the Flex delegate. Returns ``(pruned function, output names)``
    with the outputs in the order of ``tf.nest.flatten(structured_outputs)``.
    """
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    frozen = convert_variables_to_constants_v2(concrete)
    graph_def = frozen.graph.as_graph_def()
    for node in list(graph_def.node) + [n for f in graph_def.library.function for n in f.node_def]:
        if node.op == "EnsureShape":
            node.op = "Identity"
            del node.attr["shape"]
    inputs = [t.name for t in frozen.inputs if t.dtype != tf.resource]
    outputs = [t.name for t in frozen.outputs]
    wrapped = tf.compat.v1.wrap_function(lambda: tf.compat.v1.import_graph_def(graph_def, name=""), [])
    names = _output_names(concrete)
    return wrapped.prune(inputs, outputs), dict(zip([o.split(":")[0] for o in outputs], names))


def _output_names(concrete):
    structured = concrete.structured_outputs
    if isinstance(structured, dict):
        return sorted(structured)  # tf.nest.flatten order of a dict
    return [f"output_{i}" for i in range(len(tf.nest.flatten(structured)))]


def _convert(concrete, select_tf_ops, optimize):
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
    ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if select_tf_ops:
        ops.append(tf.lite.OpsSet.SELECT_TF_OPS)
    converter.target_spec.supported_ops = ops
    if optimize:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return converter.convert()


def flex_ops(tflite_model):
    """Names of the TF (Flex / select) ops a converted model uses (sorted)."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(tflite_model, 0))
    names = set()
    for code in model.operatorCodes:
        custom = code.customCode.decode() if isinstance(code.customCode, bytes) else code.customCode
        if custom and custom.startswith("Flex"):
            names.add(custom[len("Flex"):])
    return sorted(names)


def convert_tflite(model, output_path, image_size=None, batch_size=1, select_tf_ops="auto",
                   signature="serving_tensor", optimize=False):
    """Converts a detector (Keras model or exported SavedModel) to a ``.tflite`` file.

    Args:
        model: a keras_det detector, or the path of a SavedModel version
            directory from `keras_det.export.export_saved_model`.
        output_path: the ``.tflite`` file to write.
        image_size: ``(height, width)`` of the fixed input; defaults to
            ``model.image_size`` for Keras models.
        batch_size: fixed batch dimension (1 on devices).
        select_tf_ops: ``True`` (builtins + TF ops), ``False`` (builtins only,
            fails if an op has no builtin) or ``"auto"`` (builtins first).
        signature: the SavedModel signature to convert (``serving_tensor``,
            uint8 input).
        optimize: apply ``tf.lite.Optimize.DEFAULT`` (dynamic-range
            quantization of the weights).

    Returns:
        dict ``path``, ``bytes``, ``select_tf_ops`` (list of the TF ops the
        file needs, empty for a builtins-only model), ``input_shape``,
        ``input_dtype``.
    """
    if image_size is None:
        image_size = getattr(model, "image_size", None)
    if image_size is None:
        raise ValueError("`image_size` (height, width) is required.")
    image_size = tuple(int(s) for s in image_size[:2])
    if isinstance(model, (str, os.PathLike)):
        concrete, trackable = _saved_model_function(os.fspath(model), image_size, batch_size, signature)
    else:
        concrete, trackable = _keras_function(model, image_size, batch_size)
    spec = concrete.structured_input_signature[0][0]
    pruned, names = _strip_ensure_shape(concrete)
    del trackable  # the frozen graph holds the weights as constants
    if select_tf_ops == "auto":
        try:
            data = _convert(pruned, False, optimize)
        except Exception:  # an op without a builtin kernel: retry with the Flex delegate
            data = _convert(pruned, True, optimize)
    else:
        data = _convert(pruned, bool(select_tf_ops), optimize)
    os.makedirs(os.path.dirname(os.path.abspath(output_path)), exist_ok=True)
    with open(output_path, "wb") as f:
        f.write(data)
    return {
        "path": os.fspath(output_path),
        "bytes": len(data),
        "select_tf_ops": flex_ops(data),
        "input_shape": [int(d) for d in spec.shape],
        "input_dtype": spec.dtype.name,
        "outputs": names,
    }


def run_tflite(path, images, output_names=None):
    """Runs a converted model on ``images`` (a NumPy batch of the converted shape).

    Args:
        path: the ``.tflite`` file.
        images: the input batch (cast to the model's input dtype).
        output_names: ``{tflite tensor name: name}`` (``convert_tflite``'s
            ``info["outputs"]``) to rename the outputs.

    Returns:
        ``{output name: array}``.
    """
    interpreter = tf.lite.Interpreter(model_path=os.fspath(path))
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    interpreter.set_tensor(detail["index"], np.asarray(images, detail["dtype"]))
    interpreter.invoke()
    names = output_names or {}
    return {names.get(d["name"], d["name"]): np.array(interpreter.get_tensor(d["index"])) for d in interpreter.get_output_details()}
