"""The driver side of the keras_det Beam pipelines: options, running, summaries, the command line.

`execute` builds and runs a pipeline with `pipeline_options` (the local
``FnApiRunner`` unless ``--runner`` is given); `finish_summary` adds timing and
the Beam counters (`log_counters`) to a pipeline's summary and writes it;
`main` is every pipeline's command-line entry point (a
`keras_det.beam.sources.InputError` prints one line and exits 2). File access
goes through Beam's ``FileSystems`` (`read_text_lines`, `write_text`), so
``gs://``, ``s3://`` and local paths all work.
"""

import json
import logging
import time

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from keras_det.beam.sources import NAMESPACE, InputError


def pipeline_options(beam_args):
    """``PipelineOptions`` from the Beam command-line arguments.

    Without ``--runner`` the local ``FnApiRunner`` is used: it is the engine
    the DirectRunner falls back to, honours ``--direct_running_mode``
    (``in_memory``, ``multi_threading``, ``multi_processing``) and
    ``--direct_num_workers``, and never tries to download the Prism runner
    binary (the DirectRunner's first choice since Beam 2.6x, which needs the
    network). Any ``--runner`` given (``DirectRunner``, ``DataflowRunner``,
    ``FlinkRunner``, ``SparkRunner``, ...) is used as is.
    """
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

    options = PipelineOptions(list(beam_args))
    if not options.view_as(StandardOptions).runner:
        options.view_as(StandardOptions).runner = "FnApiRunner"
    return options


def read_text_lines(pattern):
    """All lines of the files matching ``pattern`` (driver side, any filesystem)."""
    lines = []
    for match in FileSystems.match([pattern])[0].metadata_list:
        with FileSystems.open(match.path) as f:
            lines.extend(line for line in f.read().decode("utf-8").splitlines() if line.strip())
    return lines


def write_text(path, text):
    """Writes ``text`` to ``path`` (driver side, any filesystem)."""
    with FileSystems.create(path) as f:
        f.write(text.encode("utf-8"))


def log_counters(result, namespace=NAMESPACE):
    """The committed counters of ``namespace`` in a finished pipeline ``result``, as a dict."""
    from apache_beam.metrics.metric import MetricsFilter

    out = {}
    try:
        counters = result.metrics().query(MetricsFilter().with_namespace(namespace))["counters"]
    except Exception as error:  # some runners do not report metrics
        logging.warning("Could not query Beam metrics: %s", error)
        return out
    for counter in counters:
        value = counter.committed if counter.committed is not None else counter.attempted
        out[counter.key.metric.name] = out.get(counter.key.metric.name, 0) + int(value or 0)
    return out


def execute(build, args, beam_args):
    """Builds a pipeline with ``build(pipeline, args)`` and runs it to the end.

    Args:
        build: function adding the transforms to a ``beam.Pipeline``.
        args: the pipeline's own parsed arguments.
        beam_args: the remaining command-line arguments (runner options).

    Returns:
        ``(result, seconds)``: the finished ``PipelineResult`` and the wall time.
    """
    start = time.time()
    pipeline = beam.Pipeline(options=pipeline_options(beam_args))
    build(pipeline, args)
    result = pipeline.run()
    result.wait_until_finish()
    return result, time.time() - start


def pop_stats(out):
    """Reads and removes the ``_stats.json`` a pipeline wrote into ``out``."""
    path = FileSystems.join(out, "_stats.json")
    stats = json.loads(read_text_lines(path)[0])
    FileSystems.delete([path])
    return stats


def finish_summary(out, name, summary, result, seconds, summary_name="summary.json"):
    """Adds timing and counters to ``summary``, writes ``out/summary.json``, logs it.

    ``images_per_second`` is added when the summary counts ``images``.
    """
    summary["seconds"] = round(seconds, 3)
    if "images" in summary:
        summary["images_per_second"] = round(summary["images"] / seconds, 4) if seconds > 0 else None
    summary["counters"] = log_counters(result)
    write_text(FileSystems.join(out, summary_name), json.dumps(summary, indent=2, sort_keys=True))
    logging.info("%s summary: %s", name, json.dumps(summary, sort_keys=True))
    return summary


def main(run, argv=None, render=None):
    """Command-line entry point: INFO logging, ``run(argv)``, print the summary.

    An `InputError` (a glob matching nothing, ...) prints one line and exits 2.
    """
    import sys

    logging.getLogger().setLevel(logging.INFO)
    try:
        summary = run(argv)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print(render(summary) if render else json.dumps(summary, indent=2, sort_keys=True))
