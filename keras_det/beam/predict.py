"""Batch inference with an exported SavedModel as an Apache Beam pipeline.

``python -m keras_det.beam.predict --model saved_models/NAME/VERSION --input 'photos/*.jpg'
--output out/predict [--min_batch_size 1 --max_batch_size 16] [Beam options]``

Steps (nothing runner-specific):

1. `keras_det.beam.sources.ReadImages` reads encoded images (image globs,
   TFRecords of ``tf.Example``, ``tfds:NAME[:SPLIT]``).
2. Each image is decoded once with ``tf.io.decode_image`` — the op the
   ``serving_default`` signature runs — to check it and to keep its original
   ``(height, width)`` with the record; an undecodable image becomes a dead
   letter *before* inference, so one bad file never fails a batch.
3. ``RunInference`` with `SavedModelHandler` (batches built by Beam's
   ``BatchElements`` inside ``RunInference``; ``--min_batch_size`` /
   ``--max_batch_size``) calls ``serving_default`` on a batch of encoded
   strings. A batch that still fails (``with_exception_handling``) turns into
   one dead letter per image (stage ``"inference"``).
4. Detections are written as COCO results JSON lines, one detection per line
   ``{"image_id", "category_id", "bbox": [x, y, w, h], "score", "file_name"}`` with the
   box in *original image pixels* (``detection_boxes`` are normalized to the
   original image), ``category_id`` = ``detection_classes`` (1-based) or
   ``--category_ids``'s entry for it. ``keras_det.beam.evaluate`` and
   ``keras_det.metrics.evaluate_coco`` (after joining the lines into a list)
   read them.

Why a custom ``ModelHandler`` rather than Beam's ``TFModelHandlerTensor``:
the latter loads models with ``tf.keras.models.load_model``, which in Keras 3
no longer reads SavedModels (only ``.keras`` files), and it stacks the batch
into one dense tensor. `SavedModelHandler` loads with ``tf.saved_model.load``
(TensorFlow only, as TF Serving) and passes the batch as a 1-D string tensor
of encoded images of any sizes, which is exactly ``serving_default``'s input.

Output directory: ``detections-SSSSS-of-NNNNN.jsonl``,
``dead_letter-SSSSS-of-NNNNN.jsonl`` (stages ``read``, ``decode``,
``inference``) and ``summary.json`` (``images``, ``detections``,
``failures``, ``seconds``, ``images_per_second``, counters). Every input is
either an inferred image (with zero or more detections) or a dead letter.
"""

import argparse
import json

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import ModelHandler, RunInference

from keras_det.beam import driver, sources
from keras_det.results import convert_image_id, to_pixels, to_results  # noqa: F401  (re-exported)

DETECTIONS_PREFIX = "detections"
DEAD_LETTER_PREFIX = "dead_letter"
SUMMARY_NAME = "summary.json"


class _CheckDecode(beam.DoFn):
    """Encoded record → record + ``height`` / ``width``, or a dead letter (stage ``decode``)."""

    def __init__(self):
        self.decoded = Metrics.counter(sources.NAMESPACE, "decoded")
        self.failed = Metrics.counter(sources.NAMESPACE, "decode_failed")

    def setup(self):
        import tensorflow as tf

        self._tf = tf

    def process(self, record):
        tf = self._tf
        try:
            if not record["encoded"]:
                raise ValueError("empty file")
            image = tf.io.decode_image(record["encoded"], channels=3, expand_animations=False, dtype=tf.uint8)
            height, width = int(image.shape[0]), int(image.shape[1])
            if height == 0 or width == 0:
                raise ValueError(f"empty image of shape {tuple(image.shape)}")
        except Exception as error:
            self.failed.inc()
            message = getattr(error, "message", None) or str(error)
            yield beam.pvalue.TaggedOutput(sources.DEAD_LETTER, sources.dead_letter(record, "decode", f"{type(error).__name__}: {message}"))
            return
        self.decoded.inc()
        yield {**record, "height": height, "width": width}


class SavedModelHandler(ModelHandler):
    """``RunInference`` handler for keras_det SavedModels (``serving_default``).

    Elements are encoded records with ``height`` / ``width`` (see
    `_CheckDecode`); each prediction is the record without its bytes plus
    ``boxes`` (``[n, 4]`` xywh pixels of the original image), ``scores``,
    ``classes`` (1-based) for the ``n = num_detections`` valid rows.

    Args:
        model_path: the SavedModel version directory (local, ``gs://``, ...).
        signature: the signature to call (``serving_default``).
        min_batch_size, max_batch_size: ``BatchElements`` bounds.
    """

    def __init__(self, model_path, signature="serving_default", min_batch_size=1, max_batch_size=16):
        super().__init__()
        self.model_path = model_path
        self.signature = signature
        self.min_batch_size = int(min_batch_size)
        self.max_batch_size = int(max_batch_size)

    def load_model(self):
        import tensorflow as tf

        loaded = tf.saved_model.load(self.model_path)
        return loaded.signatures[self.signature]

    def run_inference(self, batch, model, inference_args=None):
        import tensorflow as tf

        out = model(images=tf.constant([r["encoded"] for r in batch], tf.string))
        out = {k: v.numpy() for k, v in out.items()}
        for i, record in enumerate(batch):
            n = int(out["num_detections"][i])
            yield {
                **{k: v for k, v in record.items() if k != "encoded"},
                "boxes": to_pixels(out["detection_boxes"][i, :n], record["height"], record["width"]),
                "scores": out["detection_scores"][i, :n].astype("float64"),
                "classes": out["detection_classes"][i, :n].astype("int64"),
            }

    def batch_elements_kwargs(self):
        return {"min_batch_size": self.min_batch_size, "max_batch_size": self.max_batch_size}

    def get_num_bytes(self, batch):
        return sum(len(r["encoded"]) for r in batch)

    def get_metrics_namespace(self):
        return "keras_det_inference"


class _ToResults(beam.DoFn):
    def __init__(self, category_ids, image_id_type, min_score):
        self.category_ids = category_ids
        self.image_id_type = image_id_type
        self.min_score = min_score
        self.images = Metrics.counter(sources.NAMESPACE, "inferred")
        self.detections = Metrics.counter(sources.NAMESPACE, "detections")
        self.per_image = Metrics.distribution(sources.NAMESPACE, "detections_per_image")

    def process(self, prediction):
        results = to_results(prediction, self.category_ids, self.image_id_type, self.min_score)
        self.images.inc()
        self.detections.inc(len(results))
        self.per_image.update(len(results))
        for result in results:
            yield json.dumps(result)


def _error_text(error):
    """``RunInference``'s failure (an exception, or ``(type, repr, traceback lines)``) → one line."""
    if isinstance(error, tuple) and len(error) == 3:
        kind, _, lines = error
        last = "".join(lines).strip().splitlines()[-1] if lines else ""
        return f"{getattr(kind, '__name__', kind)}: {last}"
    return f"{type(error).__name__}: {error}"


def _failed_batch(failure):
    batch, error = failure
    reason = _error_text(error)
    for record in batch:
        yield sources.dead_letter(record, "inference", reason)


def parse_category_ids(text):
    """``"1,2,3"`` or a JSON list file → list (``category_ids[class - 1]`` is the id of 1-based class)."""
    if text is None:
        return None
    if FileSystems.exists(text):
        with FileSystems.open(text) as f:
            return list(json.loads(f.read().decode("utf-8")))
    return [int(v) if v.strip().lstrip("-").isdigit() else v.strip() for v in text.split(",")]


def build(pipeline, args):
    """Adds the prediction pipeline to ``pipeline``; returns the detection-lines PCollection."""
    out = args.output.rstrip("/")
    read = pipeline | "Read" >> sources.ReadImages(args.input, args.input_type, args.tfds_data_dir)
    checked = read.records | "CheckDecode" >> beam.ParDo(_CheckDecode()).with_outputs(sources.DEAD_LETTER, main="records")
    handler = SavedModelHandler(args.model, args.signature, args.min_batch_size, args.max_batch_size)
    predictions, failed = checked.records | "RunInference" >> RunInference(handler).with_exception_handling()
    failed_dead = failed.failed_inferences | "FailedBatches" >> beam.FlatMap(_failed_batch)
    lines = predictions | "ToResults" >> beam.ParDo(_ToResults(parse_category_ids(args.category_ids), args.image_id_type, args.min_score))
    lines | "WriteDetections" >> beam.io.WriteToText(
        FileSystems.join(out, DETECTIONS_PREFIX), file_name_suffix=".jsonl", num_shards=args.num_shards,
        shard_name_template="-SSSSS-of-NNNNN",
    )
    dead = (read[sources.DEAD_LETTER], checked[sources.DEAD_LETTER], failed_dead) | "AllDeadLetters" >> beam.Flatten()
    dead | "WriteDeadLetters" >> sources.WriteDeadLetters(FileSystems.join(out, DEAD_LETTER_PREFIX))

    side = beam.pvalue.AsSingleton
    n_images = predictions | "CountImages" >> beam.combiners.Count.Globally()
    n_dets = lines | "CountDetections" >> beam.combiners.Count.Globally()
    n_failed = dead | "CountFailures" >> beam.combiners.Count.Globally()
    (
        pipeline
        | "One" >> beam.Create([None])
        | "Stats" >> beam.Map(
            lambda _, i, d, f: json.dumps({"images": int(i), "detections": int(d), "failures": int(f)}),
            side(n_images), side(n_dets), side(n_failed),
        )
        | "WriteStats" >> beam.io.WriteToText(FileSystems.join(out, "_stats"), file_name_suffix=".json", num_shards=1, shard_name_template="")
    )
    return lines


def parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="SavedModel version directory (saved_models/NAME/VERSION)")
    p.add_argument("--input", required=True, help="glob of images or TFRecords, or tfds:NAME[:SPLIT]")
    p.add_argument("--output", required=True, help="output directory (local, gs://, ...)")
    p.add_argument("--input_type", default="auto", choices=("auto", "images", "tfrecord", "tfds"))
    p.add_argument("--tfds_data_dir", default=None)
    p.add_argument("--signature", default="serving_default")
    p.add_argument("--min_batch_size", type=int, default=1)
    p.add_argument("--max_batch_size", "--batch_size", type=int, default=16, dest="max_batch_size",
                   help="largest batch RunInference sends to the model")
    p.add_argument("--category_ids", default=None,
                   help="comma list or JSON list file: category id of 1-based class c is entry c-1 (default: c)")
    p.add_argument("--image_id_type", default="auto", choices=("auto", "int", "str"),
                   help="auto: all-digit ids (COCO file names) become ints")
    p.add_argument("--min_score", type=float, default=0.0, help="drop detections below this score")
    p.add_argument("--num_shards", type=int, default=0, help="0: the runner decides")
    return p


def run(argv=None):
    """Runs the pipeline; returns the summary dict (also written to ``summary.json``)."""
    args, beam_args = parser().parse_known_args(argv)
    sources.require_matches(args.input)
    out = args.output.rstrip("/")
    result, seconds = driver.execute(build, args, beam_args)
    summary = driver.pop_stats(out)
    summary.update({"input": args.input, "model": args.model})
    return driver.finish_summary(out, "predict", summary, result, seconds, SUMMARY_NAME)


def main(argv=None):
    driver.main(run, argv)


if __name__ == "__main__":
    main()
