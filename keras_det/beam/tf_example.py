"""``tf.train.Example`` without TensorFlow, for the Beam workers.

Importing TensorFlow costs seconds per worker process, so the pipelines build
and parse ``tf.train.Example`` with a wire-compatible copy of its schema
(tensorflow/core/example/{example,feature}.proto) in a private descriptor
pool (no clash with TensorFlow's own classes when both are loaded).
"""

_EXAMPLE_CLASSES = None


def _example_classes():
    global _EXAMPLE_CLASSES
    if _EXAMPLE_CLASSES is None:
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

        F = descriptor_pb2.FieldDescriptorProto
        fdp = descriptor_pb2.FileDescriptorProto(name="keras_det_example.proto", package="tensorflow", syntax="proto3")

        def message(name, fields, nested=()):
            msg = fdp.message_type.add(name=name)
            for fname, number, ftype, label, type_name, packed in fields:
                field = msg.field.add(name=fname, number=number, type=ftype, label=label)
                if type_name:
                    field.type_name = type_name
                if packed:
                    field.options.packed = True
            for n in nested:
                msg.nested_type.add().CopyFrom(n)
            return msg

        rep, opt = F.LABEL_REPEATED, F.LABEL_OPTIONAL
        message("BytesList", [("value", 1, F.TYPE_BYTES, rep, None, False)])
        message("FloatList", [("value", 1, F.TYPE_FLOAT, rep, None, True)])
        message("Int64List", [("value", 1, F.TYPE_INT64, rep, None, True)])
        feature = message("Feature", [
            ("bytes_list", 1, F.TYPE_MESSAGE, opt, ".tensorflow.BytesList", False),
            ("float_list", 2, F.TYPE_MESSAGE, opt, ".tensorflow.FloatList", False),
            ("int64_list", 3, F.TYPE_MESSAGE, opt, ".tensorflow.Int64List", False),
        ])
        feature.oneof_decl.add(name="kind")
        for field in feature.field:
            field.oneof_index = 0
        entry = descriptor_pb2.DescriptorProto(name="FeatureEntry")
        entry.field.add(name="key", number=1, type=F.TYPE_STRING, label=opt)
        entry.field.add(name="value", number=2, type=F.TYPE_MESSAGE, label=opt, type_name=".tensorflow.Feature")
        entry.options.map_entry = True
        message("Features", [("feature", 1, F.TYPE_MESSAGE, rep, ".tensorflow.Features.FeatureEntry", False)], nested=[entry])
        message("Example", [("features", 1, F.TYPE_MESSAGE, opt, ".tensorflow.Features", False)])
        pool = descriptor_pool.DescriptorPool()
        pool.Add(fdp)
        get = lambda name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"tensorflow.{name}"))  # noqa: E731
        _EXAMPLE_CLASSES = {name: get(name) for name in ("Example", "Feature", "BytesList", "FloatList", "Int64List")}
    return _EXAMPLE_CLASSES


def make_example(features):
    """Serialized ``tf.train.Example`` from ``{key: list of bytes | float | int}``.

    The value type picks the list: ``bytes`` → ``bytes_list``, ``float`` (or
    a float NumPy array) → ``float_list``, ``int`` → ``int64_list``.
    """
    import numpy as np

    classes = _example_classes()
    example = classes["Example"]()
    for key, values in features.items():
        feature = example.features.feature[key]
        arr = values if isinstance(values, np.ndarray) else None
        values = list(values)
        if arr is not None and np.issubdtype(arr.dtype, np.floating):
            feature.float_list.value.extend(arr.astype(np.float32).ravel().tolist())
        elif arr is not None and np.issubdtype(arr.dtype, np.integer):
            feature.int64_list.value.extend(int(v) for v in arr.ravel())
        elif values and isinstance(values[0], (bytes, bytearray)):
            feature.bytes_list.value.extend(bytes(v) for v in values)
        elif values and isinstance(values[0], (float, np.floating)):
            feature.float_list.value.extend(float(v) for v in values)
        elif values:
            feature.int64_list.value.extend(int(v) for v in values)
        else:
            feature.bytes_list.SetInParent()
    return example.SerializeToString()


def parse_example(serialized):
    """``{key: list}`` from a serialized ``tf.train.Example`` (no TensorFlow needed)."""
    example = _example_classes()["Example"].FromString(serialized)
    out = {}
    for key, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        out[key] = list(getattr(feature, kind).value) if kind else []
    return out
