"""Writes docs/benchmarks.md and its plots from benchmarks/results/ (optionally measuring first).

    python benchmarks/report.py            # tables + plots from the JSON results
    python benchmarks/report.py --run --torch-python PY   # measure everything first (about an hour on 2 cores)
    keras-det bench report [--run ...]

``--run`` measures in this order, so that the timing-sensitive part sees the
quietest machine: ``peers.py --part speed``, ``ladder.py``, ``peers.py
--part accuracy``. Plots (PNG, matplotlib's Agg backend) go to
``docs/images/``: the ladder (test time per image with and without
proposals, AP50), speed against AP50 on ``shapes``, and the 320×320 speed of
every detector and peer.
"""

import argparse
import datetime
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402
import zoo  # noqa: E402

DOCS = os.path.join(harness.ROOT, "docs")
LADDER_JSON = os.path.join(harness.RESULTS, "ladder.json")
PEERS_JSON = os.path.join(harness.RESULTS, "peers.json")
BEAM_JSON = os.path.join(harness.RESULTS, "beam_scaling.json")
REAL_JSON = os.path.join(harness.RESULTS, "real_data.json")
# Peers' speed and train results kept beside peers.json for the goal table: the same kind of machine with its
# kernels restricted to AVX2 (harness.isa_limit), and the AMD EPYC (AVX2) the issue names.
AVX2_PEERS_JSON = os.path.join(harness.RESULTS, "peers_avx2_emulated.json")
OTHER_PEERS_JSON = os.path.join(harness.RESULTS, "peers_amd_epyc.json")
# Issue 18's goals: (section, row, ratio field, bound, "max" / "min", what).
GOALS = (
    ("speed", "faster_rcnn", "ratio_to_nearest_peer", 0.90, "max", "Faster R-CNN inference / torchvision's"),
    ("speed", "mask_rcnn", "ratio_to_nearest_peer", 1.0, "max", "Mask R-CNN inference / torchvision Faster R-CNN"),
    ("speed", "faster_rcnn_20_kept", "ratio_to_nearest_peer", 0.90, "max", "Faster R-CNN, 20 kept"),
    ("speed", "mask_rcnn_20_kept", "ratio_to_nearest_peer", 1.0, "max", "Mask R-CNN, 20 kept"),
    ("speed", "ssdlite", "ratio_to_nearest_peer", 0.80, "max", "SSDLite inference / torchvision SSDLite320"),
    ("speed", "yolo_xs_20_classes", "ratio_to_nearest_peer", 0.90, "max", "YOLO xs inference / keras-cv YOLOV8 xs"),
    ("speed", "ssd_20_classes", "ratio_to_nearest_peer", 0.90, "max", "SSD-MobileNetV2 inference / keras-cv YOLOV8 xs"),
    ("train", "faster_rcnn", "images_per_s_ratio_to_peer", 1.0, "min", "Faster R-CNN training images/s / torchvision's"),
    ("train", "ssdlite", "images_per_s_ratio_to_peer", 1.0, "min", "SSDLite training images/s / torchvision SSDLite"),
    ("train", "ssd", "images_per_s_ratio_to_peer", 1.0, "min",
     "SSD training images/s / torchvision SSD-MobileNetV2-320 (composed from its parts)"),
)
PEER_COLOR = {"keras_det": "tab:blue", "keras-cv": "tab:orange", "keras-hub": "tab:green", "torchvision": "tab:red"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _time_bars(ax, t, title):
    """Test time per image with / without proposals (log scale), speed-ups over R-CNN on the bars."""
    import ladder as ladder_mod

    names = ladder_mod.LADDER
    x = list(range(len(names)))
    width = 0.38
    with_p = [1000 * t["test_s_with_proposals"][n] for n in names]
    without = [1000 * t["test_s_without_proposals"][n] for n in names]
    ax.bar([i - width / 2 for i in x], with_p, width, label="with proposals", color="tab:gray")
    ax.bar([i + width / 2 for i in x], without, width, label="without proposals", color="tab:blue")
    for i, n in enumerate(names):
        ax.annotate(ladder_mod.fmt_speedup(t["speedup_with_proposals"][n]), (i - width / 2, with_p[i]),
                    ha="center", va="bottom", fontsize=8)
        ax.annotate(ladder_mod.fmt_speedup(t["speedup_without_proposals"][n]), (i + width / 2, without[i]),
                    ha="center", va="bottom", fontsize=8)
    ax.set_yscale("log")
    ax.set_xticks(x, [zoo.LABELS[n] for n in names])
    ax.set_ylabel("test time per image (ms, log)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)


def plot_ladder(ladder, path):
    import ladder as ladder_mod

    plt = _pyplot()
    t = ladder["table"]
    scale = ladder.get("seed_scale")
    fig, axes = plt.subplots(1, 3 if scale else 2, figsize=(13 if scale else 9, 3.8))
    _time_bars(axes[0], t, "shapes, 128 px, tiny backbone (batch 1)")
    if scale:
        st = scale["settings"]
        _time_bars(axes[1], scale, f"{st['backbone']}, {st['image_hw'][0]}×{st['image_hw'][1]} photos, "
                                   f"≤{st['max_proposals']} proposals")
    ax = axes[-1]
    names = ladder_mod.LADDER
    ap50 = [100 * t["AP50"][n] for n in names]
    ax.bar(range(len(names)), ap50, color="tab:green")
    for i, v in enumerate(ap50):
        ax.annotate(f"{v:.1f}", (i, v), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(names)), [zoo.LABELS[n] for n in names])
    ax.set_ylabel("AP50 (%)")
    ax.set_title(f"AP50 on shapes after {ladder['settings']['budget']:g} CPU-s", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_speed_vs_ap(accuracy, path):
    import peers

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, r in accuracy["rows"].items():
        ms = r["infer_ms"] + r.get("proposal_ms", 0.0)
        color = PEER_COLOR["keras-cv"] if name == peers.KERASCV else PEER_COLOR["keras_det"]
        ax.scatter(ms, 100 * r["AP50"], color=color, s=30)
        ax.annotate(peers.LABELS[name], (ms, 100 * r["AP50"]), textcoords="offset points", xytext=(4, 3), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("ms per image (batch 1, 128 px; R-CNN / Fast R-CNN incl. selective search), log")
    ax.set_ylabel("AP50 on shapes test (%)")
    ax.set_title(f"Speed vs AP50 after {accuracy['budget_cpu_s']:g} CPU-s of training (blue: keras_det, orange: keras-cv)",
                 fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_peers_speed(speed, path):
    plt = _pyplot()
    rows = sorted(speed["rows"].values(), key=lambda r: r["ms"])
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(rows) + 1.2))
    y = range(len(rows))
    ax.barh(list(y), [r["ms"] for r in rows], color=[PEER_COLOR.get(r["framework"], "tab:gray") for r in rows])
    for i, r in enumerate(rows):
        ax.annotate(f"{r['ms']:.0f} ms, {r['gflops']:.1f} GFLOPs", (r["ms"], i), xytext=(3, 0),
                    textcoords="offset points", va="center", fontsize=7)
    ax.set_yticks(list(y), [r["label"] for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel(f"ms per image, batch 1, {speed['image_size']}×{speed['image_size']}, decode + NMS included (log)")
    ax.set_title("blue: keras_det, orange: keras-cv, green: keras-hub, red: torchvision", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def ladder_notes(ladder):
    t = ladder["table"]
    ss = 1000 * t["selective_search_s"]
    fast_with = 1000 * t["test_s_with_proposals"]["fast_rcnn"]
    notes = (
        f"- Without proposals Fast R-CNN is **{t['speedup_without_proposals']['fast_rcnn']:.1f}×** faster than R-CNN "
        f"(the seed: 146×): one backbone pass over the image instead of one per warped proposal (R-CNN warps all "
        f"{ladder['proposals']['max_proposals']} proposal slots, padding included, for static shapes; selective search "
        f"gives a median of {ladder['proposals']['median_proposals']:.0f} per image here).\n"
        f"- Selective search takes **{ss:.0f} ms** per image, {100 * ss / fast_with:.0f} % of Fast R-CNN's test time with "
        f"proposals — the bottleneck the seed points at; Faster R-CNN's RPN removes it: "
        f"**{t['speedup_with_proposals']['faster_rcnn']:.0f}×** R-CNN's speed with proposals (the seed: 250×).\n"
        f"- AP50 after the same {ladder['settings']['budget']:g} CPU-s: "
        + ", ".join(f"{zoo.LABELS[n]} {100 * t['AP50'][n]:.1f}" for n in ("rcnn", "fast_rcnn", "faster_rcnn"))
        + ". The seed's three are within 1 mAP of each other after days of GPU training; under a small CPU "
        "budget the faster detectors also see more training images per second.\n"
        "- On `shapes` the images are small (128 px against the seed's ~500 px) and the tiny backbone cheap, so "
        "fixed costs (RoI head, NMS) weigh more and the speed-ups are smaller than the seed's."
    )
    scale = ladder.get("seed_scale")
    if scale:
        st = scale["settings"]
        notes += (
            f"\n- At the seed's scale ({st['backbone']}, {st['image_hw'][0]}×{st['image_hw'][1]} photos, a median of "
            f"{scale['median_proposals']:.0f} proposals): R-CNN takes **{scale['test_s_without_proposals']['rcnn']:.1f} s** "
            f"per image without proposals, Fast R-CNN {1000 * scale['test_s_without_proposals']['fast_rcnn']:.0f} ms "
            f"(**{scale['speedup_without_proposals']['fast_rcnn']:.0f}×**), Faster R-CNN "
            f"{1000 * scale['test_s_without_proposals']['faster_rcnn']:.0f} ms; with selective search "
            f"({scale['selective_search_s']:.1f} s) the speed-ups are {scale['speedup_with_proposals']['fast_rcnn']:.1f}× "
            f"and **{scale['speedup_with_proposals']['faster_rcnn']:.0f}×** (the seed: 25× and 250×)."
        )
    return notes


def speed_notes(speed):
    peak = speed["peak"]
    nominal = peak["nominal"]
    lines = [
        f"- Peak: **{peak['measured_gflops']:.0f} GFLOP/s** measured (the best of 20 float32 2048×2048 matmuls in TensorFlow on "
        f"{harness.os.cpu_count()} cores); nominal "
        + (f"{nominal['gflops']:.0f} GFLOP/s ({nominal['assumption']})." if nominal["gflops"] else "unknown."),
        "- GFLOPs count convolutions and matrix products only (2 per multiply-accumulate), on both sides: "
        "`harness.graph_flops` on the traced TF graph (loop bodies × trip count), torchvision's `FlopCounterMode`.",
        "- Ratios are paired (timed back to back in each round; median over rounds); < 1 means the keras_det "
        "detector is faster.",
    ]
    if "mask_rcnn" in speed["rows"]:
        lines.append("- Random weights score each of the 91 classes about 1/92, below the two-stage detectors' 0.05 "
                     "threshold, so they keep no detection. Mask R-CNN's mask branch runs on the kept detections only, "
                     "so its row (and its GFLOPs: the branch's shapes are dynamic, not counted) times the box path; "
                     "the branch's cost grows with the detections a trained model keeps.")
        lines.append("- keras_det's two-stage GFLOPs are those of the padded graph (`peers.padded_flops`: the box head "
                     "on every proposal slot); at inference it runs on the slots up to the last valid proposal "
                     "(the RPN's NMS survivors), as torchvision's RoI heads run on the survivors only.")
    unfolded = [n for n in speed["rows"] if n.endswith("_unfolded")]
    if unfolded:
        lines.append("- keras_det rows time the served model (`keras_det.models.inference_copy`, what the export "
                     "writes): each BatchNorm after a convolution folded into it, which Keras 3 on TensorFlow otherwise "
                     "runs as a separate multiply and add over the whole feature map. The *BatchNorm unfolded* rows "
                     "time the training model itself; their ratio is unfolded / folded (> 1: folding is faster).")
    kept = [n for n in speed["rows"] if n.endswith("_kept")]
    if kept:
        lines.append("- The *kept* rows keep the top 20 detections on both sides (score threshold 0; torchvision "
                     "`box_score_thresh=0, box_detections_per_img=20`), so the second stage's decoding and NMS, and "
                     "Mask R-CNN's mask branch, run on 20 boxes. torchvision has no MobileNet Mask R-CNN: the Mask "
                     "R-CNN row is set against its Faster R-CNN, and the difference is the mask head (preset `mask_rcnn_320`: "
                     "4 convs of 64 channels on 14×14 per detection, 0.07 GFLOPs each, not in the GFLOPs column; the "
                     "paper's 256 channels cost 0.93 GFLOPs per detection).")
    if speed.get("cpu_steal_percent") is not None:
        lines.append(f"- This is a virtual machine: {speed['cpu_steal_percent']:.0f} % of the CPU time while timing "
                     "went to other guests (steal, `/proc/stat`), hence the wide IQRs; the paired ratios cancel most "
                     "of it.")
    if speed.get("errors"):
        lines.append("- Not measured: " + "; ".join(f"{k}: {v}" for k, v in speed["errors"].items()))
    return "\n".join(lines)


def _isa_text(machine):
    limit = machine.get("isa_limit") or {}
    return (" restricted to " + limit.get("ONEDNN_MAX_CPU_ISA", "?") + " code by "
            + " ".join(f"{k}={v}" for k, v in sorted(limit.items()))) if limit else ""


def machine_text(machine):
    """One line naming a results file's machine (and the ISA its kernels were restricted to, if they were)."""
    return (f"{machine.get('cpu', '?')}" + (f" ({machine['simd']}{_isa_text(machine)})" if machine.get("simd") else "")
            + f", {machine.get('cpus', '?')} CPU cores, TensorFlow {machine.get('tensorflow', '?')}, "
            f"Keras {machine.get('keras', '?')}, Python {machine.get('python', '?')}")


def _machine_key(machine):
    return machine.get("cpu"), machine.get("simd"), tuple(sorted((machine.get("isa_limit") or {}).items()))


def measured_on(part, machine):
    """A note when a peers section was measured on another machine than the file's, or did not record one."""
    own = part.get("machine")
    if own is None:
        return ("- Measured in an earlier session, before each section recorded its machine (the machine above is "
                "that of the latest run).")
    if _machine_key(own) != _machine_key(machine):
        return f"- Measured on {machine_text(own)}."
    return ""


def _goal_cell(payload, section_name, row, field, bound, kind):
    import peers

    r = (payload or {}).get(section_name, {}).get("rows", {}).get(row, {})
    value = r.get(field)
    if value is None:
        return "—"
    # A run that set the row against another peer than today's (SSD's training peer before 2026-12-07) is no verdict.
    peer = (peers.TRAIN_PEERS if section_name == "train" else peers.NEAREST).get(row)
    if r.get("nearest_peer") not in (None, peer):
        return f"— ({value:.2f}× against {peers.LABELS[r['nearest_peer']]})"
    met = value <= bound if kind == "max" else value >= bound
    return f"{value:.2f}× {'✓' if met else '✗'}"


def goal_table(*payloads):
    """Markdown table: each speed goal's paired ratio in each of ``payloads`` (peers results), one column each."""
    def name(payload):
        m = (payload or {}).get("speed", {}).get("machine") or (payload or {}).get("machine") or {}
        limit = (m.get("isa_limit") or {}).get("ONEDNN_MAX_CPU_ISA")
        return f"{m.get('cpu', '?')} ({m.get('simd', '?')}" + (f", kernels restricted to {limit})" if limit else ")")

    lines = ["| goal | bound | " + " | ".join(name(p) for p in payloads) + " |", "|---|---|" + "---|" * len(payloads)]
    for section_name, row, field, bound, kind, what in GOALS:
        cells = " | ".join(_goal_cell(p, section_name, row, field, bound, kind) for p in payloads)
        lines.append(f"| {what} | {'≤' if kind == 'max' else '≥'} {bound:.2f}× | {cells} |")
    return "\n".join(lines)


def section(title, intro, blocks, image):
    """Markdown lines of one section: heading, intro paragraph, blocks (tables, notes), image."""
    lines = [f"## {title}", "", intro, ""]
    for block in blocks:
        lines += [block, ""]
    return lines + [image, ""]


def beam_section(beam):
    """Markdown lines of the Beam runner section (``beam_scaling.json``)."""
    import beam_scaling

    st = beam["settings"]
    machine = beam.get("machine", {})
    load = beam.get("load_average_1min", {})
    steal = beam.get("timing", {}).get("cpu_steal_percent")
    intro = (
        "`keras-det bench beam_scaling` (`benchmarks/beam_scaling.py`): `keras_det.beam.predict` (tiny SSD SavedModel, "
        f"{st['image_size']} px) and `keras_det.beam.proposals` (selective search fast) over the first "
        f"{' / '.join(map(str, st['sizes']))} `shapes` test JPEGs, on the local FnApiRunner in this process, with "
        "`--direct_running_mode=multi_processing` and 1 or 2 worker processes, and on the portable runner (Beam's "
        "Python job service + an external worker pool). Wall seconds of the whole run (workers, model loading "
        f"included), medians of {st['rounds']} interleaved rounds; speed-up: paired ratio against in-process at "
        f"{max(st['sizes'])} images; start-up and per-image cost: the line through the two sizes' medians. Machine: "
        f"{machine.get('cpu', '?')}, {machine.get('cpus', '?')} cores; 1-min load average {load.get('start')} → "
        f"{load.get('end')}" + (f", CPU steal {steal:.0f} %" if steal is not None else "") + "."
    )
    notes = (
        "- The portable runs start **one SDK worker process per job** whatever `--sdk_worker_parallelism` or "
        "`--direct_num_workers` say (counted in the pool's log): Beam's Python job service runs `FnApiRunner."
        "run_via_runner_api`, which keeps one worker, and `--sdk_worker_parallelism` is read by the Flink / Spark job "
        "servers only. Parallel SDK workers on the portable path need Flink / Spark (`--parallelism`) or Dataflow.\n"
        "- Worker processes pay Python + Beam imports (predict: also TensorFlow and the SavedModel) on every run; "
        "with small inputs that start-up dominates and in-process is fastest end to end; 2 worker processes pay off "
        "first for CPU-bound steps without TensorFlow in the workers (proposals)."
    )
    if beam.get("note"):
        notes += f"\n- {beam['note']}"
    return section("Beam pipelines: in-process, worker processes, portable runner", intro,
                   [beam_scaling.table(beam), notes], "")


def real_data_section(real):
    """Markdown lines of the transfer-learning section (``real_data.json``)."""
    import real_data

    blocks = []
    cls, det = real.get("classification"), real.get("detection")
    if cls and cls.get("rows"):
        st = cls["settings"]
        counts = ", ".join(f"{n} {c}" for n, c in st["train_crops"].items())
        blocks += [
            f"**Classification of cell crops** ({st['crop_size']}×{st['crop_size']} px, {st['context']:.0%} context, "
            f"not class-balanced: train crops {counts}; {sum(st['test_crops'].values())} test crops). Cells: test "
            f"accuracy / balanced accuracy (mean per-class), {st['budget_cpu_s']:g} process CPU-s of training each "
            "(feature extraction included for the frozen trunks).",
            *real_data.classification_tables(cls),
        ]
    if det and det.get("rows"):
        st = det["settings"]
        blocks += [
            f"**Detection**: Faster R-CNN as `keras-det train` builds it ({st['model']}), {st['image_size']} px, "
            f"trained on BCCD {st['train_split']} ({st.get('train_images', '?')} images, batch {st['batch_size']}, "
            f"Adam {st['learning_rate']:g}, default augmentation, k-means anchors {st['anchor_sizes']}) for "
            f"{st['budget_cpu_s']:g} process CPU-s each; COCO AP on the 72 test images (keras_det's evaluator).",
            real_data.detection_table(det),
        ]
    for extra in real.get("detection_longer", []):
        r, st = extra["row"], extra["settings"]
        schedule = f", learning rate {st['lr_schedule']}" if st.get("lr_schedule") else ""
        blocks.append(f"Longer run, {r['strategy']} trunk alone, {st['budget_cpu_s']:g} CPU-s at {st['image_size']} px"
                      f"{schedule}: AP {r['AP']:.3f}, AP50 {r['AP50']:.3f} (per class AP50: "
                      + ", ".join(f"{k} {v:.3f}" for k, v in r["per_class_AP50"].items())
                      + f"), {r['steps']} steps / {r['images_seen']} images seen, {r['wall_s']:.0f} s wall.")
    zoo_det = real.get("detectors")
    if zoo_det and zoo_det.get("rows"):
        blocks += [
            real_data.detectors_intro(zoo_det),
            real_data.detectors_table(zoo_det),
        ]
        notes = real_data.detectors_notes(zoo_det)
        if notes:
            blocks.append(notes)
    notes = real_data.budget_notes(real)
    if notes:
        blocks += ["**Where the budget limited a cell**:", notes]
    check = real_data.recommendation_check(real)
    if check:
        blocks += ["**`recommend_strategy` against the measurements** (BCCD: small, and unlike ImageNet):", check]
    if real.get("note"):
        blocks.append(real["note"])
    intro = (
        "`keras-det bench real_data` (`benchmarks/real_data.py`): the lecture's transfer-learning table on real "
        "photographs — BCCD blood smears (RBC / WBC / Platelets) — with the one pretrained network available offline, "
        f"{real.get('weights', 'HED VGG16')} (`python -m keras_det.pretrained OUT`). See [transfer.md](transfer.md)."
    )
    return section("Transfer learning on real photos (BCCD, pretrained VGG16)", intro, blocks, "")


def train_notes(t):
    """Notes under the train table: what each row's peer is."""
    import peers

    lines = []
    if t.get("rows_from_earlier_run"):
        earlier = t["rows_from_earlier_run"]
        lines.append(f"- Rows {', '.join(peers.LABELS[n] for n in earlier['rows'])} come from "
                     f"an earlier run (paired within that run): {earlier['why']}")
    rows = t.get("rows", {})
    if "ssd" in rows and rows["ssd"].get("nearest_peer") == peers.TV_SSD_MNV2:
        lines.append("- torchvision ships no SSD with a MobileNet backbone and full 3×3 prediction convolutions (TF OD "
                     "API's `ssd_mobilenet_v2`, keras_det's `ssd_320`). SSD's peer is that layout built from "
                     "torchvision's own parts (`benchmarks/harness.py` `_TORCH_COMPOSED`: `mobilenet_v2().features` "
                     "tapped at C4 576 / C5 1280, depthwise-separable extras to 5, 3, 1, `SSDHead`, "
                     "`DefaultBoxGenerator` with 4/6/6/4/4 boxes per cell, in `SSD`: 2,390 default boxes, the same "
                     "GFLOPs within 1 %); the last column sets every row against torchvision SSDLite, which has "
                     "depthwise-separable heads and, without backbone weights, MobileNetV3's halved tail.")
    elif "ssd" in rows:
        lines.append("- torchvision has no SSD with a MobileNet backbone and full 3×3 prediction convolutions (TF OD "
                     "API's `ssd_mobilenet_v2`, keras_det's `ssd_320`): SSD's row is set against its SSDLite, which "
                     "has depthwise-separable heads and a MobileNetV3 backbone; compare the GFLOPs column.")
    return "\n".join(lines)


def _join(*notes):
    return "\n".join(n for n in notes if n)


def xla_notes(x):
    """Which parts XLA compiles and where it is faster, read off the xla section."""
    parts = {"e2e": "whole model", "dense": "dense forward", "train": "training step"}
    lines = []
    for kind, label in parts.items():
        rows = {n: r[kind] for n, r in x["rows"].items() if r.get(kind)}
        failing = sorted(n for n, c in rows.items() if not c["compiles"])
        faster = sorted(n for n, c in rows.items() if c.get("xla_ratio", 2.0) < 0.95)
        slower = sorted(n for n, c in rows.items() if c.get("xla_ratio", 0.0) > 1.05)
        lines.append(f"{label}: XLA does not compile {', '.join(failing) or 'none'}; faster (< 0.95×) for "
                     f"{', '.join(faster) or 'none'}; slower (> 1.05×) for {', '.join(slower) or 'none'}.")
    lines.append("Decision: keras_det leaves XLA off (Keras' `jit_compile=\"auto\"` is off on CPU-only machines, "
                 "and no detector overrides it): where XLA compiles here it is slower -- its CPU convolutions do not "
                 "use oneDNN -- and the whole model and the training step do not compile (the ops named above). "
                 "`compile(jit_compile=True)` stays the switch for accelerators.")
    return "\n".join(f"- {line}" for line in lines)


def render(ladder, peers_result, images_rel="images", beam=None, real=None, other_peers=None, avx2_peers=None):
    import ladder as ladder_mod
    import peers

    machine = (peers_result or {}).get("machine") or (ladder or {}).get("machine") or {}
    out = [
        "# Benchmarks",
        "",
        "Generated by `python benchmarks/report.py` (`keras-det bench report`) from `benchmarks/results/*.json`; "
        "`keras-det bench report --run --torch-python PY` measures everything again first (about an hour on 2 cores; "
        "PY is a Python with torch + torchvision for the torchvision peers, see below). Do not edit by hand.",
        "",
        f"Machine: {machine_text(machine)}. Written {datetime.date.today().isoformat()}.",
        "",
    ]
    kept = [p for p in (avx2_peers, other_peers) if p]
    if peers_result and kept and "speed" in peers_result:
        out += section(
            "Speed goals on the kinds of machine",
            "The paired ratios of the speed goals (issue 18) in the latest peers run (below) and in the runs kept in "
            "`benchmarks/results/peers_avx2_emulated.json` (an AVX-512 machine with both frameworks' kernels "
            "restricted to AVX2: `ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 keras-det bench peers ...`, a "
            "stand-in for an AVX2-only CPU: the same instructions, not its caches, memory or clock) and "
            "`benchmarks/results/peers_amd_epyc.json`; inference: keras_det time over the peer's (< 1 faster), "
            "training: images/s over the peer's (> 1 faster). Each column is one run on one machine; the "
            "machines' TensorFlow kernels differ (oneDNN picks AVX-512 code where it can), so the ratios do too. "
            "The restricted column is no faithful EPYC: before the served ReLU6 form (`keras_det.layers.relu6`, "
            "which took MobileNetV2 detectors' batch-1 inference to 0.68-0.70× of their time on AVX2 code) "
            "keras_det's MobileNetV2 detectors ran 1.15-1.8× slower there than on the EPYC, keras-cv and "
            "torchvision 1.1-1.7× faster (likely: a Zen 1 core runs 256-bit AVX2 as two 128-bit halves, which "
            "slows compute-bound models most). The EPYC run predates that form.",
            [goal_table(peers_result, *kept)],
            "",
        )
    if ladder:
        settings = ladder["settings"]
        out += section(
            "The ladder: R-CNN → Fast R-CNN → Faster R-CNN",
            "`keras-det bench ladder` (`benchmarks/ladder.py`): the same tiny backbone from scratch, the same `shapes` "
            f"images (128 px; {settings['train_images']} train / {settings['test_images']} test), the same training "
            f"budget ({settings['budget']:g} process CPU-s each); R-CNN and Fast R-CNN on the same "
            f"≤{ladder['proposals']['max_proposals']} selective-search (fast) proposals per image. Test time: batch 1, "
            f"median of {settings['timing_images']} test images × {settings['passes']} passes, the three detectors and "
            "selective search timed back to back per image.",
            [ladder_mod.table(ladder), ladder_notes(ladder)],
            f"![ladder]({images_rel}/ladder.png)",
        )
    if peers_result and "speed" in peers_result:
        s = peers_result["speed"]
        out += section(
            "Inference speed against the peers (320×320, batch 1)",
            "`keras-det bench peers --part speed` (`benchmarks/peers.py`): every keras_det detector in its "
            "ImageNet-class configuration (MobileNet backbones, 91 classes, random weights) next to keras-cv's "
            "YOLOV8Detector (xs), keras-hub's RetinaNet (ResNet-50 FPN) and torchvision's SSDLite320 and Faster R-CNN "
            f"MobileNetV3-Large-320-FPN, all in one run: {s['protocol']}; {s['timed_runs']} timed runs each. End to end: "
            "preprocessing, forward, box decoding and NMS.",
            [peers.speed_table(s), _join(speed_notes(s), measured_on(s, machine))],
            f"![speed at 320]({images_rel}/peers_speed.png)",
        )
    if peers_result and "train" in peers_result:
        t = peers_result["train"]
        out += section(
            "Training speed against torchvision (320×320, batch 8)",
            "`keras-det bench peers --part train` (`benchmarks/peers.py`): one training step — forward, every loss, "
            "gradients, SGD momentum update — of keras_det's `fit` (`model.train_function` on 8 `shapes` images at "
            "320 px, 91-class configurations) against torchvision's training step of the matching model (8 random "
            f"images, 4 boxes each; all layers trainable on both sides), interleaved: {t['protocol']}; "
            f"{t['timed_runs']} timed steps each. Ratio: images/s over the peer's, paired per round (> 1: keras_det "
            "trains faster).",
            [peers.train_table(t), _join(train_notes(t), measured_on(t, machine))],
            "",
        )
    if peers_result and "xla" in peers_result:
        x = peers_result["xla"]
        out += section(
            "XLA (`jit_compile`) against the default graph (320×320)",
            "`keras-det bench peers --part xla` (`benchmarks/peers.py`): for every detector, "
            "`tf.function(jit_compile=True)` of the served model's whole call (batch 1), of its dense forward alone "
            "(backbone, neck and heads; no decoding or NMS) and `compile(jit_compile=True)`'s training step (batch 8), "
            f"each against the same without XLA, interleaved: {x['protocol']}; {x['timed_runs']} timed runs each. "
            "Ratio: XLA time over the default graph's, paired per round (< 1: XLA faster); diff: the largest relative "
            "difference of the outputs (the first step's losses for training).",
            [peers.xla_table(x), _join(xla_notes(x), measured_on(x, machine))],
            "",
        )
    if peers_result and "accuracy" in peers_result:
        a = peers_result["accuracy"]
        out += section(
            "Accuracy after a fixed CPU budget (shapes)",
            "`keras-det bench peers --part accuracy`: every keras_det detector (tiny backbone, from scratch) and "
            f"keras-cv's YOLOV8Detector (xs, from scratch) trained on the same {a['train_images']} `shapes` images "
            f"for {a['budget_cpu_s']:g} process CPU-s each, COCO AP on the {a['test_images']} test images (keras_det's "
            "pycocotools-identical evaluator). Recipes: single-stage models and keras-cv batch 16, Adam 1e-3, the "
            "default box-aware augmentation (keras-cv also with its example's `global_clipnorm=10`, and its decoder's "
            "confidence threshold lowered from 0.2 to 0.01 for evaluation, as keras_det's SSD); two-stage models "
            "batch 8, Adam 2e-3, no augmentation. Classification + localization predicts one object per image; its "
            "second row trains and tests it on `shapes` images with one object each. Mask R-CNN's masks are scored "
            "with COCO `segm` (mask IoU, the test split's instance masks); Mask R-CNN + keypoints (the keypoint head "
            "on the 6 `shapes` keypoint slots, `mask_rcnn_keypoints_cpu`) also with COCO `keypoints` (OKS, sigma "
            "0.05 for every slot; see keras_det/data/shapes.py). Both Mask R-CNN presets have a light mask (and "
            "keypoint) head, 2 convs of 32 channels instead of the paper's 4 of 256 (it runs on every positive "
            "RoI; keras_det/presets.py). ms/image: the trained model at "
            "batch 1 (R-CNN and Fast R-CNN: + selective search).",
            [peers.accuracy_table(a)] + [n for n in [measured_on(a, machine)] if n],
            f"![speed vs AP50]({images_rel}/speed_vs_ap.png)",
        )
    if beam:
        out += beam_section(beam)
    if real:
        out += real_data_section(real)
    out += [
        "## Other benchmarks",
        "",
        "Each script prints medians and paired ratios and writes `benchmarks/results/<name>.json`:",
        "",
        "| script | measures |",
        "|---|---|",
        "| `eval_speed.py` | COCO evaluation vs pycocotools and faster-coco-eval (5,000 images); `--iou-types bbox,segm,keypoints` adds mask and keypoint rows vs pycocotools' `COCOeval` of that type (`results/eval_speed_iou_types.json`) |",
        "| `beam_eval.py` | the Beam evaluation pipeline vs `evaluate_coco` and pycocotools |",
        "| `data_throughput.py` | `keras_det.data` input pipelines, images/s |",
        "| `real_data.py` | transfer learning on BCCD photos with a pretrained VGG16; every detector on BCCD "
        "(section above) |",
        "| `beam_scaling.py` | Beam predict / proposals: in-process vs 1–2 worker processes vs the portable runner |",
        "| `proposals_scaling.py` | Beam proposal pipeline scaling, R-CNN vs Fast R-CNN at 480 px, proposal recall |",
        "| `serving_latency.py` | exported SavedModels (TF1 session loader, serving_tensor) vs Keras predict |",
        "| `relu6_forms.py` | the served ReLU6's two graph forms (`keras_det.layers.relu6`), batch 1 and 8, one run "
        "per CPU SIMD and ISA limit |",
        "| `train_two_stage.py`, `train_single_stage.py` | earlier per-family training / speed runs |",
        "",
        "### The torchvision peers",
        "",
        "torch is not a keras_det dependency; the torchvision peers run in a subprocess of another Python. On this "
        "kind of machine (x86_64, Python 3.11): `python -m venv /work/torchvenv && /work/torchvenv/bin/pip install "
        "torch==2.14.1 torchvision==0.29.1`, then pass `--torch-python /work/torchvenv/bin/python` (or set "
        "`KERAS_DET_TORCH_PYTHON`).",
        "",
    ]
    return "\n".join(out)


def write_report(ladder_path=LADDER_JSON, peers_path=PEERS_JSON, docs=DOCS, beam_path=BEAM_JSON, real_path=REAL_JSON,
                 other_peers_path=OTHER_PEERS_JSON, avx2_peers_path=AVX2_PEERS_JSON):
    """Writes ``docs/benchmarks.md`` and the PNGs from the results that exist; returns the markdown path."""
    ladder = harness.read_json(ladder_path) or None
    peers_result = harness.read_json(peers_path) or None
    beam = harness.read_json(beam_path) or None
    real = harness.read_json(real_path) or None
    other_peers = harness.read_json(other_peers_path) or None
    avx2_peers = harness.read_json(avx2_peers_path) or None
    images = os.path.join(docs, "images")
    os.makedirs(images, exist_ok=True)
    if ladder:
        plot_ladder(ladder, os.path.join(images, "ladder.png"))
    if peers_result and "speed" in peers_result:
        plot_peers_speed(peers_result["speed"], os.path.join(images, "peers_speed.png"))
    if peers_result and "accuracy" in peers_result:
        plot_speed_vs_ap(peers_result["accuracy"], os.path.join(images, "speed_vs_ap.png"))
    path = os.path.join(docs, "benchmarks.md")
    with open(path, "w") as f:
        f.write(render(ladder, peers_result, beam=beam, real=real, other_peers=other_peers,
                       avx2_peers=avx2_peers) + "\n")
    print(f"wrote {path}", flush=True)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="store_true", help="measure first (peers speed, ladder, peers accuracy)")
    parser.add_argument("--budget", type=float, default=300.0, help="with --run: training CPU-s per detector")
    parser.add_argument("--torch-python", default=os.environ.get("KERAS_DET_TORCH_PYTHON"))
    parser.add_argument("--docs", default=DOCS)
    args = parser.parse_args(argv)
    if args.run:
        import ladder
        import peers

        torch = ["--torch-python", args.torch_python] if args.torch_python else []
        peers.main(["--part", "speed", *torch])
        ladder.main(["--budget", str(args.budget)])
        peers.main(["--part", "accuracy", "--budget", str(args.budget)])
    return write_report(docs=args.docs)


if __name__ == "__main__":
    main()
