"""Beam predict and proposals pipelines on the local runners: in-process, worker processes, portable.

    python benchmarks/beam_scaling.py [--sizes 16 128] [--rounds 3] [--pipelines predict proposals]
    keras-det bench beam_scaling ...

Inputs: the first ``max(--sizes)`` test images of keras_det's ``shapes`` set
(128×128 JPEGs in a temporary folder; each size is the first N of them).
``predict`` runs a tiny SSD (`zoo.shapes_detector("ssd")`, random weights,
exported with ``keras_det.export.export_saved_model`` at 128×128,
``--max_batch_size 16``); ``proposals`` runs selective search (fast,
``--max_proposals 500``). Runner configurations (`CONFIGS`):

* ``in_process``: the local FnApiRunner in this process (``--direct_num_workers=1``);
* ``multi_processing_1`` / ``multi_processing_2``:
  ``--direct_running_mode=multi_processing --direct_num_workers=1|2`` (one
  SDK worker process per worker, started for each run);
* ``portable_1``: ``--runner=PortableRunner`` against Beam's Python job
  service with an external worker pool (`keras_det.beam.portable.LocalPortable`,
  started once for the whole benchmark; the pool starts SDK worker processes);
* ``portable_sdk_worker_parallelism_2``, ``portable_direct_num_workers_2``:
  the same with the two options one would try for 2 SDK workers. The JSON
  records the SDK worker processes the pool started per run
  (``worker_processes_per_run``): Beam's Python job service starts one
  whatever these say (see `keras_det.beam.portable`).

Timing: `harness.Interleaved` — every (pipeline, configuration, size) is a
candidate, ``--rounds`` rounds of one run each, round-robin; wall-clock ms of
``keras_det.beam.<name>.run`` (pipeline construction, worker start-up, model
loading and writing included). Ratios: paired (same round) time of a
configuration over ``in_process`` at the same size; a speed-up is its
inverse. Start-up and per-image cost: the straight line through the medians
at the two sizes (``per_image_ms = (t_large - t_small) / (N_large - N_small)``,
``startup_ms = t_small - N_small * per_image_ms``). Writes
``benchmarks/results/beam_scaling.json`` and prints a markdown table
(`table`, also in docs/benchmarks.md via ``benchmarks/report.py``).
"""

import argparse
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402  (puts the repository root on sys.path)

PIPELINES = ("predict", "proposals")
MULTI = ["--direct_running_mode=multi_processing"]
# name -> (extra runner args, uses the portable services)
CONFIGS = {
    "in_process": (["--direct_num_workers=1"], False),
    "multi_processing_1": (MULTI + ["--direct_num_workers=1"], False),
    "multi_processing_2": (MULTI + ["--direct_num_workers=2"], False),
    "portable_1": ([], True),
    "portable_sdk_worker_parallelism_2": (["--sdk_worker_parallelism=2"], True),
    "portable_direct_num_workers_2": (["--direct_num_workers=2"], True),
}
BASELINE = "in_process"
IMAGE_SIZE = 128


def write_inputs(folder, num_images, seed=0):
    """The first ``num_images`` ``shapes`` test images as JPEGs ``folder/img0000.jpg``...; returns their paths."""
    import cv2

    from keras_det import data

    os.makedirs(folder, exist_ok=True)
    ds = data.load("shapes", "test", "xyxy", num_images=num_images, image_size=IMAGE_SIZE, with_masks=False, seed=seed)
    paths = []
    for i, element in enumerate(ds):
        path = os.path.join(folder, f"img{i:04d}.jpg")
        cv2.imwrite(path, element["images"].numpy().astype("uint8")[:, :, ::-1])
        paths.append(path)
    return paths


def export_tiny_model(folder):
    """A tiny SSD (random weights, 5 classes) exported at 128×128; returns the SavedModel version directory."""
    import numpy as np

    import zoo
    from keras_det.export import export_saved_model

    model = zoo.shapes_detector("ssd", 5)
    model(np.zeros((1, IMAGE_SIZE, IMAGE_SIZE, 3), np.float32))
    return export_saved_model(model, os.path.join(folder, "ssd"), image_size=(IMAGE_SIZE, IMAGE_SIZE))


def pipeline_args(name, input_glob, model_path):
    if name == "predict":
        return ["--model", model_path, "--input", input_glob, "--max_batch_size", "16"]
    if name == "proposals":
        return ["--input", input_glob, "--max_proposals", "500"]
    raise ValueError(f"unknown pipeline {name!r}; expected one of {PIPELINES}")


def _module(name):
    from keras_det.beam import predict, proposals

    return {"predict": predict, "proposals": proposals}[name]


def candidate(name, config, size, inputs, model_path, work, services, record):
    """An `Interleaved` candidate: ``run(n)`` runs the pipeline ``n`` times, returns wall ms."""
    extra, portable = CONFIGS[config]
    runner = (services.args if portable else []) + extra
    args = pipeline_args(name, os.path.join(inputs[size], "*.jpg"), model_path)
    module = _module(name)
    key = f"{name}/{config}/{size}"

    def run(n):
        times = []
        for _ in range(n):
            out = os.path.join(work, key.replace("/", "_"))
            shutil.rmtree(out, ignore_errors=True)
            before = services.worker_starts() if portable else None
            start = time.perf_counter()
            summary = module.run([*args, "--output", out, *runner])
            times.append(1000.0 * (time.perf_counter() - start))
            if summary["images"] != size:
                raise RuntimeError(f"{key}: {summary['images']} images of {size} processed")
            if portable:
                record.setdefault(key, []).append(services.worker_starts() - before)
        return times

    return run


def fit_line(small, large, ms_small, ms_large):
    """Start-up ms and per-image ms of the line through ``(small, ms_small)``, ``(large, ms_large)``."""
    per_image = (ms_large - ms_small) / (large - small)
    return ms_small - small * per_image, per_image


def analyse(inter, pipelines, configs, sizes, worker_runs):
    """Rows per pipeline and configuration from a measured `harness.Interleaved`."""
    rows = {}
    small, large = min(sizes), max(sizes)
    for name in pipelines:
        rows[name] = {}
        for config in configs:
            row = {"seconds": {}, "images_per_second": {}, "time_ratio_vs_in_process": {}, "speedup_vs_in_process": {}}
            for size in sizes:
                key, base = f"{name}/{config}/{size}", f"{name}/{BASELINE}/{size}"
                if key not in inter.times:
                    continue
                seconds = inter.median(key) / 1000.0
                row["seconds"][str(size)] = round(seconds, 3)
                row["images_per_second"][str(size)] = round(size / seconds, 2)
                if base in inter.times:
                    ratio = inter.paired(key, base)
                    row["time_ratio_vs_in_process"][str(size)] = round(ratio, 3)
                    row["speedup_vs_in_process"][str(size)] = round(1.0 / ratio, 3)
                if key in worker_runs:
                    row.setdefault("worker_processes_per_run", {})[str(size)] = sorted(set(worker_runs[key]))
            if small != large and all(str(s) in row["seconds"] for s in (small, large)):
                startup, per_image = fit_line(small, large, 1000 * row["seconds"][str(small)], 1000 * row["seconds"][str(large)])
                row["startup_ms"] = round(startup, 1)
                row["per_image_ms"] = round(per_image, 2)
                row["marginal_images_per_second"] = round(1000.0 / per_image, 2) if per_image > 0 else None
            rows[name][config] = row
        base = rows[name].get(BASELINE, {})
        for row in rows[name].values():
            if base.get("per_image_ms") and row.get("per_image_ms"):
                row["per_image_speedup_vs_in_process"] = round(base["per_image_ms"] / row["per_image_ms"], 3)
    return rows


def table(result):
    """Markdown table of a result: seconds per size, paired speed-up, start-up and per-image cost."""
    sizes = result["settings"]["sizes"]
    large = str(max(sizes))
    head = ["pipeline", "runner", *[f"{s} images (s)" for s in sizes], f"speed-up at {large}",
            "start-up (s)", "per image (ms)", "per-image speed-up"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, configs in result["rows"].items():
        for config, row in configs.items():
            workers = row.get("worker_processes_per_run", {}).get(large)
            label = config + (f" ({'/'.join(map(str, workers))} SDK worker)" if workers else "")
            speedup = row["speedup_vs_in_process"].get(large)
            cells = [name, label, *[f"{row['seconds'][str(s)]:.2f}" if str(s) in row["seconds"] else "—" for s in sizes],
                     f"{speedup:.2f}×" if speedup else "—",
                     f"{row['startup_ms'] / 1000:.2f}" if "startup_ms" in row else "—",
                     f"{row['per_image_ms']:.1f}" if "per_image_ms" in row else "—",
                     f"{row['per_image_speedup_vs_in_process']:.2f}×" if row.get("per_image_speedup_vs_in_process") else "—"]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[16, 128], help="input sizes (images); two give start-up vs per-image")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (one run of every candidate each)")
    p.add_argument("--warmup", type=int, default=0, help="untimed runs of every candidate first")
    p.add_argument("--pipelines", nargs="+", default=list(PIPELINES), choices=PIPELINES)
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--note", default="", help="free text stored with the result (e.g. other load on the machine)")
    p.add_argument("--output", default=os.path.join(harness.RESULTS, "beam_scaling.json"))
    args = p.parse_args(argv)
    sizes = sorted(set(args.sizes))
    configs = list(dict.fromkeys([BASELINE] + args.configs))  # ratios need the in-process run
    logging.getLogger().setLevel(logging.WARNING)  # Beam's INFO lines per bundle and worker
    logging.getLogger("apache_beam").setLevel(logging.WARNING)

    work = tempfile.mkdtemp(prefix="beam_scaling_")
    try:
        inputs = {}
        paths = write_inputs(os.path.join(work, "all"), max(sizes))
        for size in sizes:
            inputs[size] = os.path.join(work, f"in{size}")
            os.makedirs(inputs[size])
            for path in paths[:size]:
                shutil.copy(path, inputs[size])
        model_path = export_tiny_model(os.path.join(work, "models")) if "predict" in args.pipelines else None
        from keras_det.beam.portable import LocalPortable

        portable = any(CONFIGS[c][1] for c in configs)
        services = LocalPortable(os.path.join(work, "services")) if portable else None
        worker_runs = {}
        load_start = round(os.getloadavg()[0], 2)
        if services is not None:
            services.__enter__()
        try:
            # Imports, the model's first load, file caches: one untimed in-process run of each pipeline.
            for name in args.pipelines:
                _module(name).run([*pipeline_args(name, os.path.join(inputs[sizes[0]], "*.jpg"), model_path),
                                   "--output", os.path.join(work, f"warm_{name}"), "--direct_num_workers=1"])
            inter = harness.Interleaved(warmup=args.warmup, rounds=args.rounds, runs_per_round=1)
            for size in sizes:
                for config in configs:
                    for name in args.pipelines:
                        inter.add(f"{name}/{config}/{size}",
                                  candidate(name, config, size, inputs, model_path, work, services, worker_runs))
            inter.measure()
        finally:
            if services is not None:
                services.close()
        result = {
            "benchmark": "Beam predict / proposals pipelines: in-process vs worker processes vs portable runner",
            "machine": harness.machine_info(),
            "settings": {"sizes": sizes, "rounds": args.rounds, "warmup": args.warmup, "image_size": IMAGE_SIZE,
                         "pipelines": args.pipelines, "configs": {c: CONFIGS[c][0] + (["<portable runner args>"] if CONFIGS[c][1] else [])
                                                                  for c in configs},
                         "predict_model": "zoo.shapes_detector('ssd', 5), tiny backbone, random weights, SavedModel 128x128, --max_batch_size 16",
                         "proposals": "selective_search_fast, --max_proposals 500"},
            "load_average_1min": {"start": load_start, "end": round(os.getloadavg()[0], 2)},
            "note": args.note,
            "timing": inter.summary(),
            "rows": analyse(inter, args.pipelines, configs, sizes, worker_runs),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    harness.write_json(args.output, result)
    print(table(result))
    return result


if __name__ == "__main__":
    main()
