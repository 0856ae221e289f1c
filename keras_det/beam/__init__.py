"""Apache Beam pipelines: region proposals, batch inference and evaluation at scale.

Run one with ``python -m keras_det.beam.proposals``, ``python -m keras_det.beam.predict``
or ``python -m keras_det.beam.evaluate`` (see docs/pipelines.md); Beam itself comes
with the ``beam`` extra. Modules:

* `sources`: input specs, reading, decoding and dead letters (`ReadImages`,
  `DecodeImages`, `ReadAndDecode`, `WriteDeadLetters`, `require_matches`);
* `tf_example`: ``tf.train.Example`` built and parsed without TensorFlow;
* `driver`: pipeline options, running, summaries and the command-line entry point;
* `proposals`, `predict`, `evaluate`: the pipelines;
* `portable`: a local job service and SDK worker pool (Beam's portable path).

Importing this package imports nothing else, so ``keras_det`` does not need Beam.
"""
