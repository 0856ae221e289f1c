"""Beam pipeline: region proposals for many images, written as TFRecords.

    python -m keras_det.beam.proposals --input 'photos/*.jpg' --output out/ \\
        [--method selective_search_fast] [--max_proposals 2000] [--include_image] \\
        [Beam options, e.g. --direct_running_mode=multi_processing --direct_num_workers=2]

Input (``--input``, see `keras_det.beam.sources`): a glob of image files, a glob of
TFRecords of ``tf.Example`` (``image/encoded``, ``image/source_id``) or
``tfds:NAME[:SPLIT]``.

Output, under the directory ``--output``:

* ``proposals-SSSSS-of-NNNNN.tfrecord``: one ``tf.Example`` per image with
  ``image/source_id`` (bytes), ``image/height``, ``image/width`` (int64),
  ``proposals/boxes`` (float list, ``count * 4`` values, absolute ``yxyx``
  pixels, best first), ``proposals/count`` (int64), ``proposals/format``
  (``b"yxyx"``), ``proposals/method`` (bytes) and, with ``--include_image``,
  ``image/encoded`` (the input bytes); with ``--features model.keras`` (a
  saved ``RCNN``) also ``proposals/features`` (``count * D`` floats, the
  pooled CNN features of each warped proposal) and ``proposals/feature_dim``.
  Read them with
  ``keras_det.data.proposal_io.read_proposals``.
* ``dead_letter-SSSSS-of-NNNNN.jsonl``: one JSON line per image that could
  not be read, decoded or processed (``image_id``, ``source``, ``stage``,
  ``reason``). Proposal records + dead letters = input images, always.
* ``summary.json``: ``images``, ``failures``, ``proposals_per_image``
  (``p50``, ``p95``, ``mean``, ``max``), ``seconds`` (wall clock of the run),
  ``images_per_second``, ``counters`` (the Beam counters).

Beam counters (namespace ``keras_det``): ``read``, ``read_failed``,
``decoded``, ``decode_failed``, ``processed``, ``failed``, ``proposals``,
``features_failed``.

The pipeline holds nothing runner-specific; docs/pipelines.md gives the
Dataflow / Flink / Spark command lines.
"""

import argparse
import json

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from keras_det.beam import driver, sources, tf_example

PROPOSALS_PREFIX = "proposals"
DEAD_LETTER_PREFIX = "dead_letter"
SUMMARY_NAME = "summary.json"


class ProposeFn(beam.DoFn):
    """Decoded record → record with ``proposals`` float32 ``[P, 4]`` yxyx, or a dead letter.

    ``opencv_threads`` is applied once per worker (``cv2.setNumThreads``);
    1 by default because Beam runs one worker per core.
    """

    def __init__(self, method, max_proposals, min_size=8, max_side=500, dedup_iou=None, edge_model=None, opencv_threads=1):
        self.kwargs = dict(
            method=method, max_proposals=max_proposals, min_size=min_size, max_side=max_side,
            dedup_iou=dedup_iou, edge_model=edge_model,
        )
        self.opencv_threads = opencv_threads
        self.processed = Metrics.counter(sources.NAMESPACE, "processed")
        self.failed = Metrics.counter(sources.NAMESPACE, "failed")
        self.total = Metrics.counter(sources.NAMESPACE, "proposals")
        self.per_image = Metrics.distribution(sources.NAMESPACE, "proposals_per_image")

    def setup(self):
        import cv2

        if self.opencv_threads is not None:
            cv2.setNumThreads(int(self.opencv_threads))

    def process(self, record):
        from keras_det.region_proposals import propose

        try:
            boxes = propose(record["image"], **self.kwargs)
        except Exception as error:
            self.failed.inc()
            yield beam.pvalue.TaggedOutput(sources.DEAD_LETTER, sources.dead_letter(record, "propose", f"{type(error).__name__}: {error}"))
            return
        self.processed.inc()
        self.total.inc(len(boxes))
        self.per_image.update(len(boxes))
        yield {**record, "proposals": boxes}


class FeaturesFn(beam.DoFn):
    """Adds R-CNN window features: record → record with ``features`` float32 ``[P, D]``.

    Loads a saved ``RCNN`` (``.keras``) once per worker and runs
    ``RCNN.window_features`` on the image's proposals, ``chunk`` windows per
    call (the paper's feature cache, computed where the proposals are).
    Failures become dead letters (stage ``"features"``).
    """

    def __init__(self, model_path, chunk=64):
        self.model_path = model_path
        self.chunk = int(chunk)
        self.failed = Metrics.counter(sources.NAMESPACE, "features_failed")

    def setup(self):
        import keras
        import tensorflow as tf

        import keras_det.models.rcnn  # noqa: F401  (registers RCNN for load_model)

        self.model = keras.saving.load_model(self.model_path)
        if not hasattr(self.model, "window_features"):
            raise ValueError(f"--features model {self.model_path!r} has no window_features (expected an RCNN).")
        self._features = tf.function(lambda image, boxes: self.model.window_features(image, boxes), reduce_retracing=True)

    def process(self, record):
        import numpy as np

        try:
            boxes = np.asarray(record["proposals"], np.float32)
            image = np.asarray(record["image"], np.float32)[None]
            out = []
            for start in range(0, len(boxes), self.chunk):
                part = boxes[start : start + self.chunk]
                padded = np.zeros((self.chunk, 4), np.float32)
                padded[: len(part)] = part
                out.append(self._features(image, padded[None]).numpy()[0, : len(part)])
            dim = int(self.model.feature_dim)
            features = np.concatenate(out) if out else np.zeros((0, dim), np.float32)
        except Exception as error:
            self.failed.inc()
            yield beam.pvalue.TaggedOutput(sources.DEAD_LETTER, sources.dead_letter(record, "features", f"{type(error).__name__}: {error}"))
            return
        yield {**record, "features": features.astype(np.float32)}


def to_example(record, method, include_image=False):
    """Serialized ``tf.Example`` of one proposal record (layout: module docstring)."""
    import numpy as np

    boxes = np.asarray(record["proposals"], np.float32)
    height, width = record["image"].shape[:2]
    feature = {
        "image/source_id": [str(record["image_id"]).encode("utf-8")],
        "image/height": [int(height)],
        "image/width": [int(width)],
        "proposals/boxes": boxes.reshape(-1),
        "proposals/count": [len(boxes)],
        "proposals/format": [b"yxyx"],
        "proposals/method": [method.encode("utf-8")],
    }
    if record.get("file_name"):
        feature["image/filename"] = [record["file_name"].encode("utf-8", "surrogateescape")]
    if include_image:
        feature["image/encoded"] = [record["encoded"]]
    if "features" in record:
        features = np.asarray(record["features"], np.float32)
        feature["proposals/features"] = features.reshape(-1)
        feature["proposals/feature_dim"] = [int(features.shape[-1])]
    return tf_example.make_example(feature)


def _summary_stats(_, images, failures, quantiles, mean, maximum):
    q = list(quantiles or [])
    mean = 0.0 if mean is None or mean != mean else mean
    pick = lambda f: float(q[int(round(f * (len(q) - 1)))]) if q else 0.0  # noqa: E731
    return json.dumps(
        {
            "images": int(images),
            "failures": int(failures),
            "proposals_per_image": {"p50": pick(0.5), "p95": pick(0.95), "mean": float(mean or 0.0), "max": float(maximum or 0.0)},
        }
    )


def build(pipeline, args):
    """Adds the proposal pipeline to ``pipeline``; returns the stats PCollection."""
    out = args.output.rstrip("/")
    images, dead = pipeline | "ReadAndDecode" >> sources.ReadAndDecode(args.input, args.input_type, args.tfds_data_dir)
    proposed = images | "Propose" >> beam.ParDo(
        ProposeFn(args.method, args.max_proposals, args.min_size, args.max_side, args.dedup_iou, args.edge_model, args.opencv_threads)
    ).with_outputs(sources.DEAD_LETTER, main="records")
    records = proposed.records
    dead_parts = [dead, proposed[sources.DEAD_LETTER]]
    if args.features:
        featured = records | "Features" >> beam.ParDo(FeaturesFn(args.features, args.feature_chunk)).with_outputs(
            sources.DEAD_LETTER, main="records"
        )
        records = featured.records
        dead_parts.append(featured[sources.DEAD_LETTER])
    (
        records
        | "ToExample" >> beam.Map(to_example, args.method, args.include_image)
        | "WriteTFRecord" >> beam.io.WriteToTFRecord(
            FileSystems.join(out, PROPOSALS_PREFIX), file_name_suffix=".tfrecord", num_shards=args.num_shards
        )
    )
    all_dead = tuple(dead_parts) | "AllDeadLetters" >> beam.Flatten()
    all_dead | "WriteDeadLetters" >> sources.WriteDeadLetters(FileSystems.join(out, DEAD_LETTER_PREFIX))

    counts = records | "Counts" >> beam.Map(lambda r: len(r["proposals"]))
    side = beam.pvalue.AsSingleton
    n_images = records | "CountImages" >> beam.combiners.Count.Globally()
    n_failed = all_dead | "CountFailures" >> beam.combiners.Count.Globally()
    quantiles = counts | "Quantiles" >> beam.transforms.stats.ApproximateQuantiles.Globally(21)
    mean = counts | "Mean" >> beam.combiners.Mean.Globally()
    maximum = counts | "Max" >> beam.CombineGlobally(lambda xs: max(xs, default=0))
    stats = (
        pipeline
        | "One" >> beam.Create([None])
        | "Stats" >> beam.Map(_summary_stats, side(n_images), side(n_failed), side(quantiles), side(mean), side(maximum))
    )
    stats | "WriteStats" >> beam.io.WriteToText(FileSystems.join(out, "_stats"), file_name_suffix=".json", num_shards=1, shard_name_template="")
    return stats


def parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", required=True, help="glob of images or TFRecords, or tfds:NAME[:SPLIT]")
    p.add_argument("--output", required=True, help="output directory (local, gs://, ...)")
    p.add_argument("--input_type", default="auto", choices=("auto", "images", "tfrecord", "tfds"))
    p.add_argument("--tfds_data_dir", default=None)
    p.add_argument("--method", default="selective_search_fast",
                   choices=("selective_search_fast", "selective_search_quality", "edge_boxes", "sliding_window"))
    p.add_argument("--max_proposals", type=int, default=2000)
    p.add_argument("--min_size", type=float, default=8)
    p.add_argument("--max_side", type=int, default=500, help="selective search runs with the long side <= this")
    p.add_argument("--dedup_iou", type=float, default=None, help="also drop near-duplicates above this IoU")
    p.add_argument("--edge_model", default=None, help="structured-edge model file (edge_boxes)")
    p.add_argument("--opencv_threads", type=int, default=1, help="cv2.setNumThreads per worker")
    p.add_argument("--include_image", action="store_true", help="also store image/encoded")
    p.add_argument("--num_shards", type=int, default=0, help="0: the runner decides")
    p.add_argument("--features", default=None, help="saved RCNN (.keras): also store window features of the proposals")
    p.add_argument("--feature_chunk", type=int, default=64, help="windows per backbone call with --features")
    return p


def run(argv=None):
    """Runs the pipeline; returns the summary dict (also written to ``summary.json``)."""
    args, beam_args = parser().parse_known_args(argv)
    if args.method == "edge_boxes" and not args.edge_model:
        raise ValueError("--method edge_boxes needs --edge_model (a structured-edge model file).")
    sources.require_matches(args.input)
    out = args.output.rstrip("/")
    result, seconds = driver.execute(build, args, beam_args)
    summary = driver.pop_stats(out)
    summary.update({"input": args.input, "method": args.method, "max_proposals": args.max_proposals})
    return driver.finish_summary(out, "proposals", summary, result, seconds, SUMMARY_NAME)


def main(argv=None):
    driver.main(run, argv)


if __name__ == "__main__":
    main()
