"""Where the keras_det Beam pipelines' records come from: input specs, reading, decoding, dead letters.

Nothing here is runner-specific: the same transforms run on the DirectRunner
(in-process or ``--direct_running_mode=multi_processing``), Dataflow, Flink
or Spark. File access goes through Beam's ``FileSystems`` so ``gs://``,
``s3://`` and local paths all work.

Element types
-------------
* an *encoded record* (output of `ReadImages`)::

      {"image_id": int (or str), "file_name": str, "source": str, "encoded": bytes}

* a *decoded record* (main output of `DecodeImages`)::

      {"image_id": int (or str), "file_name": str, "source": str, "encoded": bytes,
       "image": uint8 [H, W, 3] RGB}

* a *dead letter* (tagged output ``DEAD_LETTER`` of every step that can
  fail)::

      {"image_id": str, "file_name": str, "source": str, "stage": str, "reason": str}

Every input element leaves a step either on its main output or as exactly one
dead letter, so ``outputs + dead letters == inputs`` holds for a pipeline
built from these transforms. Per-input failures never fail the run:
a file name that is not UTF-8 or a broken symbolic link matched by the glob
→ one dead letter (stage ``match``); a TFRecord file that is truncated or
corrupt → its records before the damage are read and the rest is one dead
letter naming the file and the record index (stage ``read``); a second
record with an ``image_id`` already taken (two ``tf.Example`` s with one
``image/source_id``, or one ``image/filename`` in two files) → a dead letter
naming the first record's source (stage ``read``; the first by source path
and index is kept). A glob that matches nothing is an `InputError` before
the run starts (`require_matches`). Counters (``Metrics.counter(NAMESPACE, ...)``)
report ``read``, ``read_failed``, ``decoded`` and ``decode_failed``.

Input specs (`ReadImages`)
--------------------------
* a glob of image files (``/data/*.jpg``, ``gs://bucket/images/**``): the
  ``file_name`` is the path relative to the glob's directory before its
  first wildcard (`keras_det.identity.input_root`) and the ``image_id`` its
  `keras_det.identity.file_image_id` — the ids ``keras_det.data.load`` gives
  the same files of a folder dataset (``bccd/JPEGImages/*.jpg`` ↔
  ``load("bccd")``);
* a glob of TFRecord files of ``tf.Example`` (names ending ``.tfrecord``,
  ``.tfrec`` or containing ``tfrecord``) with ``image/encoded`` and
  ``image/source_id`` (an all-digit source id is the integer id, as
  ``keras_det.data.write_images`` writes; otherwise the `file_image_id` of
  ``image/filename``, else of the source id, else the SHA-1 of the bytes);
* ``tfds:NAME[:SPLIT]`` (``tfds:voc/2007:validation``): a prepared TFDS
  dataset (``--tfds_data_dir``); the id is ``image/id`` or the
  `file_image_id` of ``image/filename``.
"""

import hashlib
import json
import os

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from keras_det.beam.tf_example import parse_example
from keras_det.identity import file_image_id, input_root, normalize_file_name, relative_file_name

NAMESPACE = "keras_det"
DEAD_LETTER = "dead_letter"
TFRECORD_HINTS = (".tfrecord", ".tfrec", "tfrecord")


class InputError(ValueError):
    """A pipeline argument names no usable input (an empty glob): one-line message, exit 2."""


def _printable(path):
    """``path`` with bytes that are not UTF-8 shown as ``\\xNN`` (safe in JSON / Beam coders)."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _is_utf8(text):
    try:
        str(text).encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def match_inputs(spec):
    """The paths a glob matches, broken symbolic links included (local paths), sorted.

    Returns:
        list of ``(path, problem)``: ``problem`` is ``None`` for a readable
        path, else why it cannot be read (not UTF-8, a broken link).
    """
    import glob as _glob

    metadata = FileSystems.match([spec])[0].metadata_list
    paths = {m.path for m in metadata}
    if "://" not in spec:
        paths.update(
            p for p in _glob.glob(spec, recursive=True) if os.path.islink(p) and not os.path.exists(p)
        )
    out = []
    for path in sorted(paths, key=_printable):
        if not _is_utf8(path):
            out.append((path, "file name is not valid UTF-8; rename the file"))
        elif os.path.islink(path) and not os.path.exists(path):
            out.append((path, f"broken symbolic link (to {_printable(os.readlink(path))})"))
        else:
            out.append((path, None))
    return out


def require_matches(spec, flag="--input"):
    """Raises `InputError` naming ``spec`` when it is a glob / path that matches no file.

    ``tfds:`` specs are not checked (TFDS reports its own errors).
    """
    if spec.startswith("tfds:"):
        return
    try:
        found = match_inputs(spec)
    except Exception as error:  # a filesystem that cannot list the pattern
        raise InputError(f"{flag} {spec!r}: cannot be listed: {error}") from None
    if not found:
        raise InputError(f"{flag} {spec!r} matches no file.")


class _MatchFn(beam.DoFn):
    """Input spec → ``("path", path)`` per readable file, ``("dead", dead letter)`` per unreadable one."""

    def __init__(self, root):
        self.root = root
        self.failed = Metrics.counter(NAMESPACE, "read_failed")

    def process(self, spec):
        for path, problem in match_inputs(spec):
            if problem is None:
                yield "path", path
                continue
            self.failed.inc()
            shown = _printable(path)
            record = {"image_id": "", "file_name": _printable(relative_file_name(path, self.root)), "source": shown}
            yield "dead", dead_letter(record, "match", problem)


class _Route(beam.DoFn):
    """``("ok", record)`` → main output, ``("dead", dead letter)`` → ``DEAD_LETTER``."""

    def process(self, item):
        kind, value = item
        if kind == "dead":
            yield beam.pvalue.TaggedOutput(DEAD_LETTER, value)
        else:
            yield value


def _source_order(record):
    """Sort key of a record's ``source`` (``path:index`` → ``(path, index)``)."""
    path, _, index = str(record.get("source", "")).rpartition(":")
    return (path, int(index)) if index.isdigit() else (str(record.get("source", "")), -1)


def first_of_each_id(keyed):
    """``(image_id, records)`` → ``("ok", first)`` and ``("dead", ...)`` for the others.

    The first is the record with the smallest source (path, index), so the
    choice does not depend on the runner's order.
    """
    _, records = keyed
    records = sorted(records, key=_source_order)
    first = records[0]
    yield "ok", first
    for other in records[1:]:
        reason = (
            f"image_id {other['image_id']!r} is already used by {first['source']} "
            f"(file_name {first.get('file_name', '')!r}); image ids must be unique"
        )
        yield "dead", dead_letter(other, "read", reason)


class _ReadTFRecordFile(beam.DoFn):
    """TFRecord file path → ``(source, serialized)`` per record, ``path:index``; a truncated or
    corrupt file → the records before the damage and one dead letter naming the file and index."""

    def __init__(self):
        self.failed = Metrics.counter(NAMESPACE, "read_failed")

    def process(self, path):
        from apache_beam.io.tfrecordio import _TFRecordUtil

        index = 0
        try:
            with FileSystems.open(path) as f:
                while True:
                    serialized = _TFRecordUtil.read_record(f)
                    if serialized is None:
                        return
                    yield f"{path}:{index}", serialized
                    index += 1
        except Exception as error:  # truncated / corrupt / unreadable: the rest of the file is lost
            self.failed.inc()
            record = {"image_id": "", "file_name": "", "source": f"{path}:{index}"}
            reason = (
                f"TFRecord file {path} is truncated or corrupt at record {index} "
                f"({index} record(s) before it were read): {type(error).__name__}: {str(error)[:200]}"
            )
            yield beam.pvalue.TaggedOutput(DEAD_LETTER, dead_letter(record, "read", reason))


def input_kind(spec):
    """``"tfds"``, ``"tfrecord"`` or ``"images"`` for an input spec (see module doc)."""
    if spec.startswith("tfds:"):
        return "tfds"
    base = os.path.basename(spec).lower()
    if any(h in base for h in TFRECORD_HINTS):
        return "tfrecord"
    return "images"


def dead_letter(record, stage, reason):
    """A dead-letter dict for ``record`` (any dict with ``image_id`` / ``source``)."""
    return {
        "image_id": str(record.get("image_id", "")),
        "file_name": str(record.get("file_name", "")),
        "source": str(record.get("source", "")),
        "stage": stage,
        "reason": str(reason)[:500],
    }


def example_image_id(source_id, filename):
    """The ``(image_id, file_name)`` of a ``tf.Example`` from its ``source_id`` / ``filename`` (str or None)."""
    file_name = normalize_file_name(filename) if filename else (source_id or "")
    if source_id is not None and source_id.isdigit():
        return int(source_id), file_name
    if filename or source_id:
        return file_image_id(file_name), file_name
    return None, ""


def tfds_image_id(filename):
    """The id ``keras_det.data.load`` gives a TFDS example without ``image/id``: the digits of
    its file name's stem (the last 18, ``000005.jpg`` → 5); `file_image_id` when there are none
    (where ``load`` gives -1), ``None`` without a file name."""
    if not filename:
        return None
    stem = filename.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    digits = "".join(c for c in stem if c.isdigit())[-18:]
    return int(digits) if digits else file_image_id(filename)


class _ReadFile(beam.DoFn):
    """File path → encoded record, or a dead letter when the file cannot be read.

    Args:
        root: the folder ``file_name`` is relative to (`input_root` of the glob).
    """

    def __init__(self, root=""):
        self.root = root
        self.read = Metrics.counter(NAMESPACE, "read")
        self.failed = Metrics.counter(NAMESPACE, "read_failed")

    def process(self, path):
        file_name = relative_file_name(path, self.root)
        record = {"image_id": file_image_id(file_name), "file_name": file_name, "source": path}
        try:
            with FileSystems.open(path) as f:
                data = f.read()
        except Exception as error:  # any I/O failure becomes a dead letter
            self.failed.inc()
            yield beam.pvalue.TaggedOutput(DEAD_LETTER, dead_letter(record, "read", f"{type(error).__name__}: {error}"))
            return
        self.read.inc()
        yield {**record, "encoded": data}


def _first(features, key):
    values = features.get(key)
    return values[0] if values else None


class _ParseExample(beam.DoFn):
    """Serialized ``tf.Example`` → encoded record, or a dead letter."""

    def __init__(self):
        self.read = Metrics.counter(NAMESPACE, "read")
        self.failed = Metrics.counter(NAMESPACE, "read_failed")

    def process(self, item):
        source, serialized = item
        try:
            features = parse_example(serialized)
            encoded = _first(features, "image/encoded")
            source_id, filename = _first(features, "image/source_id"), _first(features, "image/filename")
            source_id = source_id.decode("utf-8") if isinstance(source_id, bytes) else source_id
            filename = filename.decode("utf-8") if isinstance(filename, bytes) else filename
            if source_id is None and _first(features, "image/id") is not None:
                source_id = str(_first(features, "image/id"))
            image_id, file_name = example_image_id(source_id, filename)
            if encoded is not None and not isinstance(encoded, bytes):
                raise ValueError("image/encoded is not a bytes feature")
        except Exception as error:
            self.failed.inc()
            digest = hashlib.sha1(serialized).hexdigest()[:16]
            yield beam.pvalue.TaggedOutput(
                DEAD_LETTER, dead_letter({"image_id": f"sha1:{digest}", "source": source}, "read", f"not a tf.Example: {error}")
            )
            return
        if image_id is None:
            image_id = "sha1:" + hashlib.sha1(encoded or serialized).hexdigest()[:16]
        record = {"image_id": image_id, "file_name": file_name, "source": source}
        if encoded is None:
            self.failed.inc()
            yield beam.pvalue.TaggedOutput(DEAD_LETTER, dead_letter(record, "read", "tf.Example has no image/encoded"))
            return
        self.read.inc()
        yield {**record, "encoded": encoded}


class _TFDSRecord(beam.DoFn):
    """TFDS example (NumPy, image left encoded) → encoded record, or a dead letter."""

    def __init__(self, source):
        self.source = source
        self.read = Metrics.counter(NAMESPACE, "read")
        self.failed = Metrics.counter(NAMESPACE, "read_failed")

    def process(self, example):
        filename = example.get("image/filename")
        filename = filename.decode("utf-8") if isinstance(filename, bytes) else filename
        image_id = example.get("image/id")
        if image_id is not None:
            image_id, file_name = int(image_id), normalize_file_name(filename or "")
        else:
            image_id, file_name = tfds_image_id(filename), normalize_file_name(filename or "")
        record = {"image_id": image_id if image_id is not None else "", "file_name": file_name, "source": self.source}
        try:
            encoded = bytes(example["image"])
        except Exception as error:
            self.failed.inc()
            yield beam.pvalue.TaggedOutput(DEAD_LETTER, dead_letter(record, "read", f"no encoded image: {error}"))
            return
        if image_id is None:
            record["image_id"] = "sha1:" + hashlib.sha1(encoded).hexdigest()[:16]
        self.read.inc()
        yield {**record, "encoded": encoded}


class ReadImages(beam.PTransform):
    """Reads images as encoded records (see the module docstring for ``spec``).

    Returns a ``DoOutputsTuple`` with the main output (encoded records) and
    ``DEAD_LETTER`` (records that could not be read).

    Args:
        spec: a glob of image files or TFRecords, or ``tfds:NAME[:SPLIT]``.
        kind: ``"auto"`` (from `input_kind`), ``"images"``, ``"tfrecord"``
            or ``"tfds"``.
        tfds_data_dir: TFDS ``data_dir``.
    """

    def __init__(self, spec, kind="auto", tfds_data_dir=None):
        super().__init__()
        self.spec = spec
        self.kind = input_kind(spec) if kind == "auto" else kind
        self.tfds_data_dir = tfds_data_dir

    def expand(self, pbegin):
        def tagged(pcoll, kind, label):
            return pcoll | label >> beam.Map(lambda x, k=kind: (k, x))

        if self.kind in ("images", "tfrecord"):
            matched = (
                pbegin
                | "Spec" >> beam.Create([self.spec])
                | "Match" >> beam.ParDo(_MatchFn(input_root(self.spec)))
            )
            paths = (
                matched
                | "Readable" >> beam.Filter(lambda kv: kv[0] == "path")
                | "Paths" >> beam.Map(lambda kv: kv[1])
                # Fan the (cheap) file list out before the (expensive) work.
                | "Spread" >> beam.Reshuffle()
            )
            dead = [matched | "Unreadable" >> beam.Filter(lambda kv: kv[0] == "dead")]
        if self.kind == "images":
            read = paths | "ReadFiles" >> beam.ParDo(_ReadFile(input_root(self.spec))).with_outputs(DEAD_LETTER, main="records")
            parts = [tagged(read.records, "ok", "OkRecords"), tagged(read[DEAD_LETTER], "dead", "DeadRecords"), *dead]
            return tuple(parts) | "Merge" >> beam.Flatten() | "Route" >> beam.ParDo(_Route()).with_outputs(DEAD_LETTER, main="records")
        if self.kind == "tfrecord":
            files = paths | "ReadTFRecords" >> beam.ParDo(_ReadTFRecordFile()).with_outputs(DEAD_LETTER, main="serialized")
            parsed = files.serialized | "Parse" >> beam.ParDo(_ParseExample()).with_outputs(DEAD_LETTER, main="records")
            unique = (
                parsed.records
                | "KeyById" >> beam.Map(lambda r: (r["image_id"], r))
                | "GroupById" >> beam.GroupByKey()
                | "FirstOfId" >> beam.FlatMap(first_of_each_id)
            )
            parts = [
                unique, tagged(files[DEAD_LETTER], "dead", "DeadFiles"),
                tagged(parsed[DEAD_LETTER], "dead", "DeadExamples"), *dead,
            ]
            return tuple(parts) | "Merge" >> beam.Flatten() | "Route" >> beam.ParDo(_Route()).with_outputs(DEAD_LETTER, main="records")
        if self.kind == "tfds":
            import tensorflow_datasets as tfds

            parts = self.spec[len("tfds:"):].split(":")
            name, split = parts[0], (parts[1] if len(parts) > 1 else "train")
            builder = tfds.builder(name, data_dir=self.tfds_data_dir)
            source = f"tfds:{name}:{split}"
            examples = (
                pbegin
                | "ReadTFDS" >> tfds.beam.ReadFromTFDS(builder, split, decoders={"image": tfds.decode.SkipDecoding()})
                | "ToNumpy" >> beam.Map(tfds.as_numpy)
                | "Spread" >> beam.Reshuffle()
            )
            return examples | "ToRecords" >> beam.ParDo(_TFDSRecord(source)).with_outputs(DEAD_LETTER, main="records")
        raise ValueError(f"Unknown input kind {self.kind!r}; expected 'images', 'tfrecord' or 'tfds'.")


def decode_image_bytes(data):
    """Encoded JPEG/PNG/BMP/... bytes → uint8 ``[H, W, 3]`` RGB.

    Raises:
        ValueError: empty bytes, an undecodable file or an empty image.
    """
    import cv2
    import numpy as np

    if not data:
        raise ValueError("empty file")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("undecodable image (not a readable JPEG/PNG/BMP/TIFF/WebP)")
    if image.ndim != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"empty or malformed image of shape {image.shape}")
    return np.ascontiguousarray(image[:, :, ::-1])


class _Decode(beam.DoFn):
    def __init__(self):
        self.decoded = Metrics.counter(NAMESPACE, "decoded")
        self.failed = Metrics.counter(NAMESPACE, "decode_failed")

    def setup(self):
        import cv2

        cv2.setNumThreads(1)

    def process(self, record):
        try:
            image = decode_image_bytes(record["encoded"])
        except Exception as error:
            self.failed.inc()
            yield beam.pvalue.TaggedOutput(DEAD_LETTER, dead_letter(record, "decode", error))
            return
        self.decoded.inc()
        yield {**record, "image": image}


class DecodeImages(beam.PTransform):
    """Encoded records → decoded records, undecodable/empty ones → ``DEAD_LETTER``."""

    def expand(self, records):
        return records | "Decode" >> beam.ParDo(_Decode()).with_outputs(DEAD_LETTER, main="images")


class ReadAndDecode(beam.PTransform):
    """`ReadImages` + `DecodeImages`; returns ``(decoded records, dead letters)``."""

    def __init__(self, spec, kind="auto", tfds_data_dir=None):
        super().__init__()
        self.read = ReadImages(spec, kind, tfds_data_dir)

    def expand(self, pbegin):
        read = pbegin | "Read" >> self.read
        decoded = read.records | "DecodeImages" >> DecodeImages()
        dead = (read[DEAD_LETTER], decoded[DEAD_LETTER]) | "MergeDeadLetters" >> beam.Flatten()
        return decoded.images, dead


class WriteDeadLetters(beam.PTransform):
    """Writes dead letters as JSON lines ``<prefix>-SSSSS-of-NNNNN.jsonl``."""

    def __init__(self, prefix):
        super().__init__()
        self.prefix = prefix

    def expand(self, dead):
        return (
            dead
            | "ToJson" >> beam.Map(lambda d: json.dumps(d, sort_keys=True))
            | "WriteJsonl" >> beam.io.WriteToText(self.prefix, file_name_suffix=".jsonl", shard_name_template="-SSSSS-of-NNNNN")
        )
