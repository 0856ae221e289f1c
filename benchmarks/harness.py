"""Measurement helpers shared by the scripts of ``benchmarks/``.

* `Interleaved`: times several candidates in rounds (one chunk of runs of
  each candidate per round, round-robin), so that a change of the machine's
  load between rounds hits all of them alike; medians, IQRs and *paired*
  ratios (median over rounds of the ratio of the two candidates' medians in
  that round).
* `graph_flops`: multiply-accumulate FLOPs of a traced TensorFlow function
  (2 FLOPs per MAC of every convolution and matrix product, loop bodies
  times their static trip count) — the convention of
  ``torch.utils.flop_counter.FlopCounterMode``, so the TF and torch numbers
  of `peers.py` count the same thing. Element-wise ops, pooling, NMS and
  resizing are not counted (a few % of a detector's total).
* `measured_peak_gflops` / `nominal_peak_gflops`: this CPU's peak, measured
  (best float32 matrix product in TensorFlow on all cores: what a dense
  kernel reaches here) and nominal (cores × clock × FLOPs/cycle from the
  SIMD flags ``lscpu`` reports).
* `TorchPeer`: a torchvision detector in a long-lived subprocess of another
  Python (keras_det's environment has no torch), driven round by round.
* `train_for_cpu_seconds`: ``fit`` until a budget of process CPU time is
  spent (CPU time, not wall time, so that a busy machine does not shrink it).
"""

import json
import os
import platform
import re
import statistics
import subprocess
import sys
import textwrap
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------


def fetch(outputs):
    """Copies every tensor of a (nested) output to NumPy: the work is done when this returns."""
    import tensorflow as tf

    return tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, outputs)


def timer(fn, *args):
    """``run(n)`` → ``n`` wall times in ms of ``fn(*args)`` with the outputs fetched."""

    def run(n):
        times = []
        for _ in range(n):
            start = time.perf_counter()
            fetch(fn(*args))
            times.append(1000.0 * (time.perf_counter() - start))
        return times

    return run


def cpu_ticks():
    """``(steal, total)`` CPU ticks of the machine since boot (``/proc/stat``; ``(0, 0)`` where there is none)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    # user nice system idle iowait irq softirq steal (guest times are inside user/nice)
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


def steal_percent(before, after):
    """% of the CPU time between two `cpu_ticks` readings that the hypervisor gave to other guests."""
    total = after[1] - before[1]
    return round(100.0 * (after[0] - before[0]) / total, 1) if total > 0 else None


def paired_ratio(rounds_a, rounds_b):
    """Median over rounds of ``median(a_round) / median(b_round)``.

    Args:
        rounds_a, rounds_b: lists (one entry per round) of lists of times of
            two candidates timed back to back in each round.
    """
    if len(rounds_a) != len(rounds_b) or not rounds_a:
        raise ValueError(f"paired_ratio needs the same non-zero number of rounds, got {len(rounds_a)} and {len(rounds_b)}")
    return statistics.median(statistics.median(a) / statistics.median(b) for a, b in zip(rounds_a, rounds_b))


class Interleaved:
    """Round-robin timing of candidates.

    Args:
        warmup: untimed runs of each candidate first (tracing, allocators).
        rounds: timed rounds.
        runs_per_round: timed runs of each candidate per round.
        log: print a line per round.

    A candidate is ``run(n) -> list of n times in ms`` (see `timer`).
    Candidates whose warm-up raises are dropped and reported in ``errors``.
    """

    def __init__(self, warmup=5, rounds=5, runs_per_round=4, log=True):
        self.warmup, self.rounds, self.runs_per_round, self.log = int(warmup), int(rounds), int(runs_per_round), log
        self.candidates = {}
        self.times = {}
        self.errors = {}

    def add(self, name, run):
        self.candidates[name] = run

    def measure(self):
        for name, run in list(self.candidates.items()):
            try:
                run(self.warmup)
            except Exception as e:  # noqa: BLE001 - report a candidate's failure, keep measuring the others
                lines = f"{type(e).__name__}: {e}".strip().splitlines()
                self.errors[name] = lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1]}"
                print(f"{name}: dropped ({self.errors[name]})", flush=True)
                del self.candidates[name]
        self.times = {name: [] for name in self.candidates}
        ticks = cpu_ticks()
        for r in range(self.rounds):
            start = time.perf_counter()
            for name, run in self.candidates.items():
                self.times[name].append(run(self.runs_per_round))
            if self.log:
                print(f"round {r + 1}/{self.rounds}: {time.perf_counter() - start:.1f} s", flush=True)
        self.steal = steal_percent(ticks, cpu_ticks())
        return self

    def all_times(self, name):
        return [t for chunk in self.times[name] for t in chunk]

    def median(self, name):
        return statistics.median(self.all_times(name))

    def iqr(self, name):
        t = self.all_times(name)
        return [float(np.percentile(t, 25)), float(np.percentile(t, 75))]

    def paired(self, a, b):
        return paired_ratio(self.times[a], self.times[b])

    def summary(self):
        return {
            "protocol": (
                f"{self.warmup} warm-up runs, then {self.rounds} interleaved rounds of {self.runs_per_round} runs of "
                "every candidate (outputs fetched to NumPy); ms: median and IQR of all timed runs; ratios: median "
                "over rounds of the ratio of the two candidates' medians in that round"
            ),
            "timed_runs": self.rounds * self.runs_per_round,
            # CPU time the hypervisor gave to other guests while timing (a virtual machine's noise).
            "cpu_steal_percent": getattr(self, "steal", None),
            "ms": {k: round(self.median(k), 3) for k in self.times},
            "iqr_ms": {k: [round(v, 3) for v in self.iqr(k)] for k in self.times},
            "errors": dict(self.errors),
        }


# ---------------------------------------------------------------------------
# FLOPs
# ---------------------------------------------------------------------------


def _dims(tensor):
    shape = tensor.shape
    if shape.rank is None or any(d is None for d in shape.as_list()):
        return None
    return shape.as_list()


def _op_macs(op):
    """Multiply-accumulates of one conv / matmul op from its static shapes; ``None`` if unknown, 0 for other ops."""
    t = op.type
    if t in ("Conv2D", "Conv3D"):
        out, kernel = _dims(op.outputs[0]), _dims(op.inputs[1])
        if out is None or kernel is None:
            return None
        # output elements × (kernel window × input channels); kernel [kh, kw, (kd,) cin, cout]
        return int(np.prod(out)) * int(np.prod(kernel[:-1]))
    if t == "DepthwiseConv2dNative":
        out, kernel = _dims(op.outputs[0]), _dims(op.inputs[1])
        if out is None or kernel is None:
            return None
        # kernel [kh, kw, cin, multiplier]; each output channel sees one input channel
        return int(np.prod(out)) * kernel[0] * kernel[1]
    if t == "Conv2DBackpropInput":  # transposed convolution: inputs (input_sizes, filter, out_backprop)
        small, kernel = _dims(op.inputs[2]), _dims(op.inputs[1])
        if small is None or kernel is None:
            return None
        # kernel [kh, kw, out_channels_of_transpose, in_channels_of_transpose]
        return int(np.prod(small)) * kernel[0] * kernel[1] * kernel[2]
    if t == "MatMul":
        a, b = _dims(op.inputs[0]), _dims(op.inputs[1])
        if a is None or b is None:
            return None
        m, k = (a[1], a[0]) if op.get_attr("transpose_a") else (a[0], a[1])
        n = b[0] if op.get_attr("transpose_b") else b[1]
        return m * n * k
    if t in ("BatchMatMul", "BatchMatMulV2", "BatchMatMulV3"):
        out, a = _dims(op.outputs[0]), _dims(op.inputs[0])
        if out is None or a is None:
            return None
        k = a[-2] if op.get_attr("adj_x") else a[-1]
        return int(np.prod(out)) * k
    return 0


_CALL_ATTRS = {
    "PartitionedCall": ("f",),
    "StatefulPartitionedCall": ("f",),
    "If": ("then_branch", "else_branch"),
    "StatelessIf": ("then_branch", "else_branch"),
}


def _graph_macs(graph, root, by_op, notes):
    total = 0
    for op in graph.get_operations():
        if op.type in ("While", "StatelessWhile"):
            body = root._get_function(op.get_attr("body").name).graph
            inner = {}
            macs = _graph_macs(body, root, inner, notes)
            if macs:
                import tensorflow as tf

                trips = tf.get_static_value(op.inputs[1])  # while_v2's loop vars: (counter, maximum_iterations, ...)
                if trips is None or int(trips) < 0:
                    notes.append(f"{op.name}: loop with conv/matmul ops and no static trip count (counted once)")
                    trips = 1
                total += macs * int(trips)
                for k, v in inner.items():
                    by_op[k] = by_op.get(k, 0) + v * int(trips)
            continue
        if op.type in _CALL_ATTRS:
            branches = []
            for attr in _CALL_ATTRS[op.type]:
                inner = {}
                branches.append((_graph_macs(root._get_function(op.get_attr(attr).name).graph, root, inner, notes), inner))
            macs, inner = max(branches, key=lambda b: b[0])  # an If counts its costlier branch
            total += macs
            for k, v in inner.items():
                by_op[k] = by_op.get(k, 0) + v
            continue
        macs = _op_macs(op)
        if macs is None:
            notes.append(f"{op.name} ({op.type}): dynamic shape, not counted")
            continue
        if macs:
            total += macs
            by_op[op.type] = by_op.get(op.type, 0) + macs
    return total


def graph_flops(fn, *args):
    """FLOPs (2 per multiply-accumulate) of the convolutions and matrix products of ``fn(*args)``.

    Args:
        fn: a Python callable or ``tf.function``; traced once on ``args``.
        *args: example inputs (tensors or nested structures); their shapes
            must be static for the count to be exact.

    Returns:
        dict with ``flops`` (int), ``by_op`` (FLOPs per op type) and
        ``notes`` (ops that could not be counted exactly; empty when exact).
    """
    import tensorflow as tf

    if not hasattr(fn, "get_concrete_function"):
        fn = tf.function(fn)
    specs = tf.nest.map_structure(lambda t: tf.TensorSpec(tf.convert_to_tensor(t).shape, tf.convert_to_tensor(t).dtype), args)
    graph = fn.get_concrete_function(*specs).graph
    by_op, notes = {}, []
    macs = _graph_macs(graph, graph, by_op, notes)
    return {"flops": 2 * macs, "by_op": {k: 2 * v for k, v in sorted(by_op.items())}, "notes": notes}


def measured_peak_gflops(size=2048, repeats=20):
    """Best GFLOP/s of ``repeats`` float32 ``size×size`` matrix products in TensorFlow on all cores.

    The best, not the median: a peak is what the machine can reach, and
    other load only ever lowers a run.
    """
    import tensorflow as tf

    a = tf.random.uniform([size, size], seed=1)
    b = tf.random.uniform([size, size], seed=2)
    matmul = tf.function(lambda x, y: tf.reduce_sum(tf.matmul(x, y)))
    for _ in range(3):
        matmul(a, b).numpy()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b).numpy()
        times.append(time.perf_counter() - start)
    return 2.0 * size**3 / min(times) / 1e9


def nominal_peak_gflops(lscpu_text=None, cores=None):
    """Nominal float32 peak from ``lscpu``: cores × clock × FLOPs per cycle per core.

    FLOPs per cycle: 2 FMA units × SIMD lanes × 2 (AVX-512: 16 lanes → 64;
    AVX2 + FMA: 8 lanes → 32; otherwise 4 lanes and no FMA → 8). Two FMA
    units is an assumption (server Xeons since Skylake-SP Gold have two);
    the clock is the base clock in the model name, or ``lscpu``'s MHz.

    Args:
        lscpu_text: ``lscpu``'s output (run here when ``None``).
        cores: core count (``os.cpu_count()`` when ``None``).

    Returns:
        dict ``gflops`` (``None`` if unknown), ``assumption`` (how it was computed).
    """
    text = lscpu_text
    if text is None:
        try:
            text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            return {"gflops": None, "assumption": "lscpu not available"}
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    flags = set(fields.get("Flags", "").split())
    ghz = None
    match = re.search(r"@\s*([\d.]+)\s*GHz", fields.get("Model name", ""))
    if match:
        ghz = float(match.group(1))
    elif fields.get("CPU max MHz") or fields.get("CPU MHz"):
        ghz = float(fields.get("CPU max MHz") or fields.get("CPU MHz")) / 1000.0
    cores = cores or os.cpu_count() or 1
    if "avx512f" in flags:
        per_cycle, simd = 64, "AVX-512 (16 float32 lanes) × 2 FMA units × 2"
    elif "avx2" in flags and "fma" in flags:
        per_cycle, simd = 32, "AVX2 (8 lanes) × 2 FMA units × 2"
    else:
        per_cycle, simd = 8, "SSE (4 lanes) × 2 units, no FMA"
    if ghz is None:
        return {"gflops": None, "assumption": f"clock unknown; {simd} per cycle"}
    return {
        "gflops": cores * ghz * per_cycle,
        "assumption": f"{cores} cores × {ghz:g} GHz × {per_cycle} FLOP/cycle ({simd})",
    }


def machine_info():
    import keras
    import tensorflow as tf

    return {
        "platform": platform.platform(),
        "cpu": platform.processor() or _cpu_model(),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "simd": cpu_simd(),
        "isa_limit": isa_limit(),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


# Environment variables that cap the vector instructions the kernels may use below what the CPU has:
# oneDNN's (TensorFlow's CPU kernels and torch's convolutions) and torch's own ATen kernels.
ISA_LIMIT_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")


def isa_limit():
    """``{variable: value}`` of the `ISA_LIMIT_VARIABLES` set in this process (``{}``: the CPU's full ISA).

    ``ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2`` on an AVX-512 CPU runs both frameworks' AVX2 code,
    a stand-in (same instructions, not the same caches or memory) for an AVX2-only CPU such as the AMD EPYC."""
    return {k: os.environ[k] for k in ISA_LIMIT_VARIABLES if os.environ.get(k)}


def cpu_simd():
    """The widest vector extension the CPU reports (``"AVX-512"``, ``"AVX2"``, ...; ``None`` if unknown):
    TensorFlow's kernels, hence every timing here, depend on it."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return None
    for flag, name in (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX"), ("sse4_2", "SSE4.2")):
        if flag in flags:
            return name
    return None


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


# ---------------------------------------------------------------------------
# Training on a CPU budget
# ---------------------------------------------------------------------------


def train_for_cpu_seconds(model, dataset, budget, steps_per_call=50, warmup_steps=5, lr_drop=None):
    """``fit`` on a repeated dataset until ``budget`` seconds of process CPU time are spent.

    The first ``warmup_steps`` (graph tracing, cache filling) run before the
    clock starts. Training stops at the first multiple of ``steps_per_call``
    past the budget (so at least ``steps_per_call`` steps run, whatever the
    budget).

    Args:
        lr_drop: ``(fraction, factor)`` or ``None``: once ``fraction`` of the
            budget is spent, the optimizer's learning rate is multiplied by
            ``factor`` (once) -- the step schedule of the detection recipes
            (Detectron2 / torchvision ``MultiStepLR``: x0.1 near the end), in
            CPU time because the number of steps is not known in advance.

    Returns:
        dict ``steps``, ``wall_s``, ``cpu_s``, ``final_loss`` (+ ``lr_drop_step``
        with ``lr_drop``: the step after which the rate was dropped).
    """
    if lr_drop is not None and not (0.0 < lr_drop[0] < 1.0 and lr_drop[1] > 0.0):
        raise ValueError(f"lr_drop must be (fraction in (0, 1), factor > 0), got {lr_drop!r}.")
    if warmup_steps:
        model.fit(dataset, steps_per_epoch=warmup_steps, epochs=1, verbose=0)
    steps, loss, drop_step = 0, float("nan"), None
    wall, cpu = time.perf_counter(), time.process_time()
    while steps == 0 or time.process_time() - cpu < budget:
        if lr_drop is not None and drop_step is None and time.process_time() - cpu >= lr_drop[0] * budget:
            rate = model.optimizer.learning_rate
            rate.assign(float(rate.numpy()) * lr_drop[1])
            drop_step = steps
        history = model.fit(dataset, steps_per_epoch=steps_per_call, epochs=1, verbose=0).history
        loss = float(history["loss"][-1])
        steps += steps_per_call
    out = {"steps": steps, "wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu, "final_loss": loss}
    if lr_drop is not None:
        out["lr_drop_step"] = drop_step
    return out


# ---------------------------------------------------------------------------
# torchvision peers
# ---------------------------------------------------------------------------

# torchvision's own constructors, then the models composed here from torchvision's parts (`_TORCH_COMPOSED`).
TORCH_MODELS = ("ssdlite320_mobilenet_v3_large", "fasterrcnn_mobilenet_v3_large_320_fpn", "ssd_mobilenet_v2_320")

# torchvision ships no SSD-MobileNetV2 (its SSD is VGG16 at 300 px, 35 GFLOPs; its SSDLite has depthwise heads and,
# without backbone weights, MobileNetV3's halved tail: 1.17 GFLOPs). So keras_det's ``ssd_320`` is set against the
# same layout built from torchvision's public parts: ``mobilenet_v2().features`` split at the expansion of the first
# stride-32 block (C4, 576 channels) and its end (C5, 1280), depthwise-separable extra blocks to 5, 3 and 1
# (``Conv2dNormActivation``), torchvision's ``SSDHead`` (3x3 convs) and ``DefaultBoxGenerator`` with keras_det's 4, 6,
# 6, 4, 4 boxes per cell, in torchvision's ``SSD`` (its matching, 3:1 hard negatives and losses). At 320 px: maps
# 20, 10, 5, 3, 1, 2,390 default boxes, 4.34 GFLOPs (keras_det 4.37), 15.8 M parameters (keras_det 15.9 M).
_TORCH_COMPOSED = textwrap.dedent(
    """
    import collections
    import torchvision
    from torch import nn
    from torchvision.ops.misc import Conv2dNormActivation
    from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
    from torchvision.models.detection.ssd import SSD, SSDHead


    class _SSDMobileNetV2Features(nn.Module):
        def __init__(self):
            super().__init__()
            features = torchvision.models.mobilenet_v2(weights=None).features
            self.c4 = nn.Sequential(*features[:14], features[14].conv[0])
            self.c5 = nn.Sequential(*features[14].conv[1:], *features[15:])

            def extra(cin, cout, valid):  # 1x1 to half, 3x3 depthwise (stride 2, or 'valid' 3 -> 1), 1x1 to cout
                mid = cout // 2
                return nn.Sequential(
                    Conv2dNormActivation(cin, mid, 1, activation_layer=nn.ReLU6),
                    Conv2dNormActivation(mid, mid, 3, stride=1 if valid else 2, padding=0 if valid else 1, groups=mid,
                                         activation_layer=nn.ReLU6),
                    Conv2dNormActivation(mid, cout, 1, activation_layer=nn.ReLU))

            self.extras = nn.ModuleList([extra(1280, 512, False), extra(512, 256, False), extra(256, 256, True)])

        def forward(self, x):
            maps = [self.c4(x)]
            maps.append(self.c5(maps[-1]))
            for block in self.extras:
                maps.append(block(maps[-1]))
            return collections.OrderedDict((str(i), m) for i, m in enumerate(maps))


    def ssd_mobilenet_v2_320(num_classes=91, **options):
        anchors = DefaultBoxGenerator([[2], [2, 3], [2, 3], [2], [2]], min_ratio=0.2, max_ratio=0.95)
        head = SSDHead([576, 1280, 512, 256, 256], anchors.num_anchors_per_location(), num_classes)
        return SSD(_SSDMobileNetV2Features(), anchors, (320, 320), num_classes, head=head, **options)


    COMPOSED = {"ssd_mobilenet_v2_320": ssd_mobilenet_v2_320}
    """
)

_TORCH_SERVER = textwrap.dedent(
    """
    import json, sys, time
    import torch, torchvision
    from torch.utils.flop_counter import FlopCounterMode
    name, threads, warmup, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    options = json.loads(sys.argv[5]) if len(sys.argv) > 5 else {}
    train_batch = int(sys.argv[6]) if len(sys.argv) > 6 else 0
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    if name in COMPOSED:
        model = COMPOSED[name](num_classes=91, **options).eval()
    else:
        model = getattr(torchvision.models.detection, name)(weights=None, weights_backbone=None, num_classes=91,
                                                            **options).eval()
    x = [torch.rand(3, size, size)]  # torchvision detectors take 0..1 images and normalise inside

    def e2e():
        model(x)

    def raw():  # transform + backbone + head, no decoding / NMS
        images, _ = model.transform(x)
        features = model.backbone(images.tensors)
        features = list(features.values()) if isinstance(features, dict) else [features]
        if hasattr(model, "head"):
            model.head(features)
        else:
            model.rpn.head(features)

    fns = {"e2e": e2e, "raw": raw}
    if train_batch:
        # One SGD step (momentum 0.9) on train_batch images with 4 boxes each, all four losses, in train mode.
        g = torch.Generator().manual_seed(0)
        train_x = [torch.rand(3, size, size, generator=g) for _ in range(train_batch)]
        targets = []
        for _ in range(train_batch):
            xy = torch.rand(4, 2, generator=g) * (size - 64)
            wh = 16 + torch.rand(4, 2, generator=g) * 48
            targets.append({"boxes": torch.cat([xy, xy + wh], 1),
                            "labels": torch.randint(1, 91, (4,), generator=g)})
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

        def train():
            model.train()
            with torch.enable_grad():
                loss = sum(model(train_x, targets).values())
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            model.eval()

        fns["train"] = train
        for _ in range(min(warmup, 3)):
            train()
    with torch.no_grad():
        for _ in range(warmup):
            raw(); e2e()
        counter = FlopCounterMode(display=False)
        with counter:
            e2e()
        detections = len(model(x)[0]["boxes"])
        images, _ = model.transform(x)
        maps = model.backbone(images.tensors)
        maps = list(maps.values()) if isinstance(maps, dict) else [maps]
    layout = {"feature_maps": [list(m.shape[-2:]) for m in maps]}
    if hasattr(model, "anchor_generator"):  # single-stage (SSD): default boxes per cell of each map
        layout["boxes_per_cell"] = model.anchor_generator.num_anchors_per_location()
    print(json.dumps({"ready": True, "torch": torch.__version__, "torchvision": torchvision.__version__,
                      "threads": torch.get_num_threads(), "params": sum(p.numel() for p in model.parameters()),
                      "flops": int(counter.get_total_flops()), "detections": detections, "options": options,
                      **layout}),
          flush=True)
    with torch.no_grad():
        for line in sys.stdin:
            fn, n = line.split()
            times = []
            for _ in range(int(n)):
                t = time.perf_counter(); fns[fn](); times.append(1000 * (time.perf_counter() - t))
            print(json.dumps(times), flush=True)
    """
)


class TorchPeer:
    """A torchvision detector (``weights=None``, 91 classes) in a subprocess of ``python``.

    Args:
        python: a Python with torch and torchvision.
        model: a name of ``torchvision.models.detection`` or of a model composed
            from torchvision's parts (see `TORCH_MODELS`).
        threads: ``torch.set_num_threads``.
        warmup: untimed runs in the subprocess before it reports ready.
        image_size: square input side.
        options: keyword arguments of the torchvision constructor (e.g.
            ``box_score_thresh``, ``box_detections_per_img``).
        omp_wait_policy: ``OMP_WAIT_POLICY`` of the subprocess (``None`` or
            ``""``: OpenMP's default). ``"PASSIVE"`` helps when another busy
            process shares the cores, but costs a wake-up per parallel region
            (2-thread SSDLite 1.6× slower on a quiet machine here).

    ``info`` holds versions, params and ``flops`` (FlopCounterMode, one
    end-to-end call). ``runner("e2e" | "raw")`` is an `Interleaved` candidate;
    with ``train_batch`` > 0 also ``runner("train")``: one SGD step (momentum
    0.9, the model's four losses) on ``train_batch`` random images with 4
    random boxes each, in train mode.
    """

    def __init__(self, python, model, threads, warmup=10, image_size=320, omp_wait_policy=None, options=None,
                 train_batch=0):
        env = dict(os.environ)
        if omp_wait_policy:
            env["OMP_WAIT_POLICY"] = omp_wait_policy
        self.proc = subprocess.Popen(
            [python, "-c", _TORCH_COMPOSED + _TORCH_SERVER, model, str(threads), str(warmup), str(image_size),
             json.dumps(options or {}), str(train_batch)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read().strip().splitlines()
            raise RuntimeError(err[-1] if err else f"{python} exited with {self.proc.wait()}")
        self.info = json.loads(line)
        self.info["OMP_WAIT_POLICY"] = env.get("OMP_WAIT_POLICY")

    def runner(self, fn):
        def run(n):
            self.proc.stdin.write(f"{fn} {n}\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(self.proc.stderr.read().strip()[-500:])
            return json.loads(line)

        return run

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=60)


# ---------------------------------------------------------------------------
# Results files
# ---------------------------------------------------------------------------


def read_json(path):
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return {}


def write_json(path, payload):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(payload, f, indent=2)
    print(f"wrote {path}", flush=True)
