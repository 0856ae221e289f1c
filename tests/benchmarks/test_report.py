"""benchmarks/peers.py summaries, ladder.py's table and report.py's page + plots, on hand-made results."""

import argparse

import pytest

import harness
import ladder
import peers
import report


def _fake(value):
    return lambda n: [value] * n


def speed_section():
    bench = harness.Interleaved(warmup=1, rounds=3, runs_per_round=2, log=False)
    bench.add(peers.SELECTIVE_SEARCH, _fake(700.0))
    bench.add("ssd", _fake(100.0))
    bench.add("fast_rcnn", _fake(150.0))
    bench.add(f"{peers.TV_SSD}@1t", _fake(120.0))
    bench.add(f"{peers.TV_SSD}@2t", _fake(80.0))
    bench.measure()
    info = {
        "ssd": {"params": 1_000_000, "framework": "keras_det", "num_classes": 91},
        "fast_rcnn": {"params": 2_000_000, "framework": "keras_det", "num_classes": 91},
        f"{peers.TV_SSD}@1t": {"params": 3_000_000, "framework": "torchvision", "threads": 1},
        f"{peers.TV_SSD}@2t": {"params": 3_000_000, "framework": "torchvision", "threads": 2},
    }
    flops = {k: {"flops": f, "notes": []} for k, f in
             (("ssd", 5e9), ("fast_rcnn", 10e9), (f"{peers.TV_SSD}@1t", 1e9), (f"{peers.TV_SSD}@2t", 1e9))}
    peak = {"measured_gflops": 200.0, "nominal": {"gflops": 400.0, "assumption": "test"}}
    return peers.summarize_speed(bench, info, flops, peak, argparse.Namespace(proposals=200))


def test_speed_summary_ratios_peak_fraction_and_fastest_torch_variant():
    s = speed_section()
    assert s["torch_variants"] == {peers.TV_SSD: f"{peers.TV_SSD}@2t"}
    tv = s["rows"][peers.TV_SSD]
    assert tv["ms"] == 80.0 and tv["threads"] == 2 and tv["variants_ms"] == {f"{peers.TV_SSD}@1t": 120.0,
                                                                             f"{peers.TV_SSD}@2t": 80.0}
    ssd = s["rows"]["ssd"]
    assert ssd["nearest_peer"] == peers.TV_SSD and ssd["ratio_to_nearest_peer"] == pytest.approx(100 / 80)
    assert ssd["attained_gflops_per_s"] == pytest.approx(5 / 0.1)
    assert ssd["fraction_of_measured_peak"] == pytest.approx(50 / 200)
    assert ssd["fraction_of_nominal_peak"] == pytest.approx(50 / 400)
    fast = s["rows"]["fast_rcnn"]
    assert fast["ms_with_proposals"] == pytest.approx(850.0) and "ratio_to_torchvision_ssdlite" in fast
    assert peers.SELECTIVE_SEARCH not in s["rows"] and s["selective_search_ms"] == 700.0
    table = peers.speed_table(s)
    assert "| SSD | 1.0 M | 5.00 | 100.0 (100.0–100.0) | 50.0 | 25.0 % | 1.25× torchvision SSDLite320 MNv3 | 1.25× |" in table
    assert "850 with proposals" in table and "(2 threads)" in table


def ladder_result():
    without = {"rcnn": 2.0, "fast_rcnn": 0.05, "faster_rcnn": 0.02}
    ss = 0.45
    with_props = {"rcnn": 2.45, "fast_rcnn": 0.5, "faster_rcnn": 0.02}
    return {
        "machine": {"cpus": 2, "cpu": "test CPU", "tensorflow": "x", "keras": "y", "python": "z"},
        "settings": {"budget": 300.0, "train_images": 1000, "test_images": 200, "timing_images": 20, "passes": 2},
        "proposals": {"max_proposals": 300, "median_proposals": 150.0},
        "table": {
            "test_s_with_proposals": with_props,
            "speedup_with_proposals": {n: with_props["rcnn"] / v for n, v in with_props.items()},
            "test_s_without_proposals": without,
            "speedup_without_proposals": {n: without["rcnn"] / v for n, v in without.items()},
            "selective_search_s": ss,
            "AP50": {"rcnn": 0.5, "fast_rcnn": 0.6, "faster_rcnn": 0.7},
            "AP": {"rcnn": 0.3, "fast_rcnn": 0.35, "faster_rcnn": 0.4},
            "train_images_per_s": {"rcnn": 10.0, "fast_rcnn": 90.0, "faster_rcnn": 45.0},
        },
        "models": {},
        "seed_scale": {
            "settings": {"backbone": "mobilenet_v2", "image_hw": [480, 640], "max_proposals": 2000},
            "median_proposals": 1800.0,
            "test_s_with_proposals": {"rcnn": 41.0, "fast_rcnn": 2.0, "faster_rcnn": 0.25},
            "speedup_with_proposals": {"rcnn": 1.0, "fast_rcnn": 20.5, "faster_rcnn": 164.0},
            "test_s_without_proposals": {"rcnn": 40.0, "fast_rcnn": 1.0, "faster_rcnn": 0.25},
            "speedup_without_proposals": {"rcnn": 1.0, "fast_rcnn": 40.0, "faster_rcnn": 160.0},
            "selective_search_s": 1.0,
        },
    }


def test_ladder_table_in_the_seeds_layout():
    text = ladder.table(ladder_result())
    assert "| Test time per image (with proposals) | 2.45 s | 0.500 s | 0.020 s |" in text
    assert "| (Speedup) | 1.0x | 4.9x | 122x |" in text  # 2.45 / 0.5, 2.45 / 0.02
    assert "| Test time per image (without proposals) | 2.00 s | 0.050 s | 0.020 s |" in text
    assert "| (Speedup) | 1.0x | 40x | 100x |" in text
    assert "| AP50 (%) on shapes test, after 300 CPU-s of training | 50.0 | 60.0 | 70.0 |" in text
    # The seed's rows, from the papers.
    assert "| Test time per image (with proposals) | 50.00 s | 2.00 s | 0.200 s |" in text
    assert "| (Speedup) | 1.0x | 25x | 250x |" in text
    assert "| mAP (VOC 2007) | 66.0 | 66.9 | 66.9 |" in text
    scale = text[text.index("at the seed's scale (mobilenet_v2, 480×640 photos, ≤2000 proposals"):text.index("the seed (VGG16")]
    assert "| Test time per image (with proposals) | 41.00 s | 2.00 s | 0.250 s |" in scale
    assert "| (Speedup) | 1.0x | 20x | 164x |" in scale


def accuracy_section():
    rows = {}
    for i, name in enumerate(("ssd", "fast_rcnn", peers.KERASCV)):
        rows[name] = {"model": name, "AP50": 0.2 + 0.1 * i, "AP": 0.1 + 0.05 * i, "steps": 100 * (i + 1),
                      "train_images_per_s": 50.0, "infer_ms": 10.0 + i, "params": 1_500_000}
    rows["fast_rcnn"]["proposal_ms"] = 80.0
    return {"budget_cpu_s": 300.0, "train_images": 1000, "test_images": 200, "image_size": 128, "rows": rows}


def test_report_writes_page_and_plots(tmp_path):
    ladder_path, peers_path = tmp_path / "ladder.json", tmp_path / "peers.json"
    harness.write_json(str(ladder_path), ladder_result())
    harness.write_json(str(peers_path), {"machine": {"cpu": "test CPU", "cpus": 2}, "speed": speed_section(),
                                         "accuracy": accuracy_section()})
    page = report.write_report(str(ladder_path), str(peers_path), str(tmp_path / "docs"))
    text = open(page).read()
    for png in ("ladder.png", "peers_speed.png", "speed_vs_ap.png"):
        data = (tmp_path / "docs" / "images" / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, png
        assert f"(images/{png})" in text
    assert "Fast R-CNN is **40.0×** faster than R-CNN" in text
    assert "Selective search takes **450 ms** per image, 90 % of Fast R-CNN's test time" in text
    assert "R-CNN takes **40.0 s** per image without proposals, Fast R-CNN 1000 ms (**40×**)" in text
    # Accuracy rows are sorted by AP50, the keras-cv peer included.
    acc = text[text.index("| detector | AP50"):]
    assert acc.index("keras-cv YOLOV8 xs") < acc.index("Fast R-CNN") < acc.index("| SSD |")
    assert "| Fast R-CNN | 0.300 | 0.150 | – | – | 200 | 50.0 | 11.0 + 80 selective search | 1.50 M |" in acc
    assert "not yet learned" not in acc  # every row here is above AP50 0.05


def test_report_without_results_still_writes_a_page(tmp_path):
    page = report.write_report(str(tmp_path / "none.json"), str(tmp_path / "none2.json"), str(tmp_path / "docs"))
    text = open(page).read()
    assert text.startswith("# Benchmarks") and "## The ladder" not in text and "## Other benchmarks" in text


def test_accuracy_table_shows_mask_and_keypoint_ap():
    a = accuracy_section()
    base = {"steps": 10, "train_images_per_s": 5.0, "infer_ms": 20.0, "params": 2_000_000}
    a["rows"]["mask_rcnn"] = {"model": "mask_rcnn", "AP50": 0.5, "AP": 0.25, **base,
                              "segm": {"AP50": 0.4, "AP": 0.2}}
    a["rows"]["mask_rcnn_keypoints"] = {"model": "mask_rcnn_keypoints", "AP50": 0.45, "AP": 0.2, **base,
                                        "segm": {"AP50": 0.35, "AP": 0.15}, "keypoints": {"AP50": 0.3, "AP": 0.1}}
    table = peers.accuracy_table(a)
    assert "| detector | AP50 | AP | mask AP50 / AP | keypoint AP50 / AP (OKS) |" in table
    assert "| Mask R-CNN | 0.500 | 0.250 | 0.400 / 0.200 | – | 10 |" in table
    assert "| Mask R-CNN + keypoints | 0.450 | 0.200 | 0.350 / 0.150 | 0.300 / 0.100 | 10 |" in table
    assert "| SSD | 0.200 | 0.100 | – | – |" in table


def test_goal_table_marks_each_goal_on_both_machines():
    current = {"speed": {"machine": {"cpu": "Xeon", "simd": "AVX-512"},
                         "rows": {"faster_rcnn": {"ratio_to_nearest_peer": 0.95}, "ssdlite": {"ratio_to_nearest_peer": 0.5}}},
               "train": {"rows": {"ssd": {"images_per_s_ratio_to_peer": 1.2, "nearest_peer": peers.TV_SSD_MNV2},
                                  "ssdlite": {"images_per_s_ratio_to_peer": 0.9, "nearest_peer": peers.TV_SSD}}}}
    other = {"machine": {"cpu": "EPYC", "simd": "AVX2"},
             "speed": {"rows": {"faster_rcnn": {"ratio_to_nearest_peer": 0.71}}},
             # a run from before SSD's training peer changed: its ratio is shown, but is no verdict
             "train": {"rows": {"ssd": {"images_per_s_ratio_to_peer": 0.52, "nearest_peer": peers.TV_SSD}}}}
    table = report.goal_table(current, other)
    assert "| goal | bound | Xeon (AVX-512) | EPYC (AVX2) |\n|---|---|---|---|\n" in table
    assert "| Faster R-CNN inference / torchvision's | ≤ 0.90× | 0.95× ✗ | 0.71× ✓ |" in table
    assert "| SSDLite inference / torchvision SSDLite320 | ≤ 0.80× | 0.50× ✓ | — |" in table
    assert "| SSDLite training images/s / torchvision SSDLite | ≥ 1.00× | 0.90× ✗ | — |" in table
    assert ("| SSD training images/s / torchvision SSD-MobileNetV2-320 (composed from its parts) | ≥ 1.00× | 1.20× ✓ | "
            "— (0.52× against torchvision SSDLite320 MNv3) |") in table
    # A third column: the same CPU with its kernels restricted to AVX2 (harness.isa_limit), named so.
    restricted = {"machine": {"cpu": "Xeon", "simd": "AVX-512",
                              "isa_limit": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}},
                  "speed": {"rows": {"faster_rcnn": {"ratio_to_nearest_peer": 0.85}}},
                  "train": {"rows": {"ssdlite": {"images_per_s_ratio_to_peer": 1.02, "nearest_peer": peers.TV_SSD}}}}
    table = report.goal_table(current, restricted, other)
    assert ("| goal | bound | Xeon (AVX-512) | Xeon (AVX-512, kernels restricted to AVX2) | EPYC (AVX2) |\n"
            "|---|---|---|---|---|\n") in table
    assert "| Faster R-CNN inference / torchvision's | ≤ 0.90× | 0.95× ✗ | 0.85× ✓ | 0.71× ✓ |" in table
    assert "| SSDLite training images/s / torchvision SSDLite | ≥ 1.00× | 0.90× ✗ | 1.02× ✓ | — |" in table


def test_isa_limit_is_recorded_and_named(monkeypatch):
    for k in harness.ISA_LIMIT_VARIABLES:
        monkeypatch.delenv(k, raising=False)
    assert harness.isa_limit() == {}
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    assert harness.isa_limit() == {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
    full = {"cpu": "Xeon", "simd": "AVX-512", "cpus": 2}
    restricted = {**full, "isa_limit": harness.isa_limit()}
    assert report.machine_text(restricted).startswith(
        "Xeon (AVX-512 restricted to AVX2 code by ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2), 2 CPU cores")
    assert report.machine_text(full).startswith("Xeon (AVX-512), 2 CPU cores")
    # The same CPU with and without the limit are two machines for the report's "measured on" notes.
    assert "restricted to AVX2" in report.measured_on({"machine": restricted}, full)
    assert report.measured_on({"machine": restricted}, dict(restricted)) == ""


def test_a_section_measured_elsewhere_names_its_machine():
    machine = {"cpu": "Xeon", "simd": "AVX-512", "cpus": 2}
    assert report.measured_on({"machine": dict(machine)}, machine) == ""
    assert "AMD EPYC (AVX2), 2 CPU cores" in report.measured_on({"machine": {"cpu": "AMD EPYC", "simd": "AVX2", "cpus": 2}},
                                                                machine)
    assert "earlier session" in report.measured_on({}, machine)
