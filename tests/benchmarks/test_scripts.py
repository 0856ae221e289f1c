"""The benchmark scripts end to end at toy sizes (seconds of training; the numbers mean nothing here)."""

import json
import os

import pytest

import ladder
import peers
import zoo

TINY = ["--train-images", "16", "--test-images", "4", "--budget", "0", "--steps-per-call", "2"]


@pytest.mark.slow
def test_ladder_runs_and_writes_the_table(tmp_path, capsys):
    out = tmp_path / "ladder.json"
    ladder.main(TINY + ["--timing-images", "2", "--passes", "1", "--scale-proposals", "8", "--scale-image-size", "96",
                        "128", "--scale-backbone", "tiny", "--output", str(out)])
    result = json.loads(out.read_text())
    t = result["table"]
    for name in ladder.LADDER:
        assert t["test_s_without_proposals"][name] > 0 and 0 <= t["AP50"][name] <= 1
        assert result["models"][name]["steps"] >= 2
    # Proposals add selective search to the two detectors that take them, and nothing to Faster R-CNN.
    for name in zoo.PROPOSAL_DETECTORS:
        assert t["test_s_with_proposals"][name] == pytest.approx(t["test_s_without_proposals"][name] + t["selective_search_s"])
    assert t["test_s_with_proposals"]["faster_rcnn"] == t["test_s_without_proposals"]["faster_rcnn"]
    assert t["speedup_with_proposals"]["rcnn"] == 1.0 and t["speedup_without_proposals"]["rcnn"] == 1.0
    assert len(result["per_image_s"]["rcnn"]) == 2
    assert set(result["models"]["rcnn"]["stages"]) == {"finetune", "svm"}
    scale = result["seed_scale"]
    assert scale["settings"]["image_hw"] == [96, 128] and len(scale["per_image_s"]["rcnn"]) == len(ladder.SCALE_PHOTOS)
    for name in zoo.PROPOSAL_DETECTORS:
        assert scale["test_s_with_proposals"][name] == pytest.approx(
            scale["test_s_without_proposals"][name] + scale["selective_search_s"])
    printed = capsys.readouterr().out
    assert "| (Speedup) | 1.0x |" in printed and "at the seed's scale (tiny, 96×128 photos, ≤8 proposals" in printed


@pytest.mark.slow
def test_peers_speed_and_accuracy_run(tmp_path):
    out = tmp_path / "peers.json"
    peers.main(["--part", "speed", "--models", "classify_localize", "--warmup", "1", "--rounds", "1",
                "--runs-per-round", "1", "--no-kerashub", "--unfolded-too", "--output", str(out)])
    speed = json.loads(out.read_text())["speed"]
    assert set(speed["rows"]) == {"classify_localize", "classify_localize" + peers.UNFOLDED, peers.KERASCV}
    row = speed["rows"]["classify_localize"]
    unfolded = speed["rows"]["classify_localize" + peers.UNFOLDED]
    assert row["batch_norm_folded"] and not unfolded["batch_norm_folded"]
    assert unfolded["nearest_peer"] == "classify_localize" and unfolded["params"] > row["params"]
    assert row["gflops"] > 0.1 and row["ms"] > 0 and 0 < row["fraction_of_measured_peak"] < 1.5
    assert speed["rows"][peers.KERASCV]["gflops"] > 1.0
    assert "skipped" in speed["errors"]["torchvision"]
    peers.main(["--part", "accuracy", "--models", "ssd", "--no-kerascv"] + TINY + ["--output", str(out)])
    peers.main(["--part", "accuracy", "--models", "classify_localize"] + TINY + ["--output", str(out)])
    payload = json.loads(out.read_text())
    assert "speed" in payload, "a part that was not re-measured is kept"
    rows = payload["accuracy"]["rows"]
    # Rows of the first run are kept (same budget and data); classify+localize also trains on 1-object images.
    assert set(rows) == {"ssd", "classify_localize", peers.ONE_OBJECT, peers.KERASCV}
    assert rows[peers.ONE_OBJECT]["data"] == "shapes with max_objects=1"
    for r in rows.values():
        assert 0 <= r["AP50"] <= 1 and r["infer_ms"] > 0 and r["steps"] >= 2


@pytest.mark.slow
def test_peers_accuracy_scores_masks_and_keypoints(tmp_path):
    out = tmp_path / "peers.json"
    peers.main(["--part", "accuracy", "--models", "mask_rcnn", "mask_rcnn_keypoints", "--no-kerascv"] + TINY
               + ["--output", str(out)])
    rows = json.loads(out.read_text())["accuracy"]["rows"]
    assert set(rows) == {"mask_rcnn", "mask_rcnn_keypoints"}
    # Mask R-CNN: box and mask AP; with the keypoint head also the 10 OKS numbers.
    assert "segm" in rows["mask_rcnn"] and "keypoints" not in rows["mask_rcnn"]
    assert set(rows["mask_rcnn_keypoints"]["keypoints"]) == {"AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75",
                                                             "ARm", "ARl"}
    for r in rows.values():
        assert len(r["segm"]) == 12 and r["steps"] >= 2
        for scores in (r["coco"], r["segm"], r.get("keypoints", {})):
            for k, v in scores.items():
                # -1: no ground truth in that area range (pycocotools), else a number in [0, 1].
                assert v == -1.0 or 0.0 <= v <= 1.0, (k, v)
    table = peers.accuracy_table(json.loads(out.read_text())["accuracy"])
    assert "| Mask R-CNN + keypoints |" in table


def test_bench_command_finds_the_new_scripts():
    from keras_det.cli import main

    for name in ("ladder", "peers", "report"):
        assert main(["bench", name, "--help"]) == 0  # the script's --help exit code, through main()
    assert os.path.exists(os.path.join(os.path.dirname(zoo.__file__), "ladder.py"))


@pytest.mark.slow
def test_peers_train_part_times_a_fit_step(tmp_path):
    out = tmp_path / "peers.json"
    peers.main(["--part", "train", "--models", "ssdlite", "--warmup", "0", "--rounds", "1", "--runs-per-round", "1",
                "--output", str(out)])
    t = json.loads(out.read_text())["train"]
    assert set(t["rows"]) == {"ssdlite"} and t["batch"] == peers.TRAIN_BATCH
    row = t["rows"]["ssdlite"]
    assert row["ms_per_step"] > 0 and row["images_per_s"] == pytest.approx(peers.TRAIN_BATCH * 1000 / row["ms_per_step"])
    assert 0 < row["trainable_params"] <= row["params"]
    assert "skipped" in t["errors"]["torchvision"]
    assert "| SSDLite |" in peers.train_table(t)


@pytest.mark.slow
def test_peers_xla_part_compares_jit_compile_with_the_default_graph(tmp_path):
    out = tmp_path / "peers.json"
    peers.main(["--part", "xla", "--models", "classify_localize", "--warmup", "0", "--rounds", "1",
                "--runs-per-round", "1", "--output", str(out)])
    x = json.loads(out.read_text())["xla"]
    row = x["rows"]["classify_localize"]
    assert row["dense_part"] == "heads"
    for kind in ("e2e", "dense", "train"):
        cell = row[kind]
        if cell["compiles"]:
            # Timed both ways, and XLA's outputs (losses for training) close to the default graph's.
            assert cell["ms"] > 0 and cell["xla_ms"] > 0 and cell["xla_ratio"] > 0
            assert cell["max_rel_diff"] < 1e-2
        else:
            assert cell["error"]
    table = peers.xla_table(x)
    assert "| Classify+localize |" in table and table.count("|") == 3 * 5


def test_peers_accuracy_merge_keeps_other_rows_and_notes():
    settings = {"budget_cpu_s": 300.0, "train_images": 1000, "test_images": 200}
    old = {**settings, "rows": {"ssd": {"AP50": 0.5}, "yolo_v1": {"AP50": 0.004}}, "notes": ["a remark"]}
    fresh = {**settings, "rows": {"yolo_v1": {"AP50": 0.3}}}
    merged = peers.merge_accuracy(old, fresh)
    assert merged["rows"] == {"ssd": {"AP50": 0.5}, "yolo_v1": {"AP50": 0.3}} and merged["notes"] == ["a remark"]
    assert peers.merge_accuracy(old, {**fresh, "notes": ["new"]})["notes"] == ["new"]
    # Another budget: the old rows are not comparable and are dropped.
    other = {**fresh, "budget_cpu_s": 60.0}
    assert peers.merge_accuracy(old, other) == other


def test_padded_flops_count_the_box_head_on_every_proposal_slot():
    """Inference runs the box head on a dynamic number of slots; the speed table's count is the padded graph's."""
    import harness
    import tensorflow as tf

    from keras_det import presets
    from keras_det.layers import BoxRoIHead

    model = presets.build("faster_rcnn_micro", 3)
    x = tf.zeros((1, 64, 64, 3))
    model(x)
    dynamic = harness.graph_flops(lambda t: model(t, training=False), x)
    padded = peers.padded_flops(model, x)
    head = next(layer for layer in model._flatten_layers() if isinstance(layer, BoxRoIHead))
    assert head.skip_padding  # restored
    assert any("MatMul" in note for note in dynamic["notes"]) and not padded["notes"]
    # Every Dense kernel of the box head (fc layers, class and box predictors) on every proposal slot.
    slots = model.proposal_source.proposal_generator.post_nms_topk_test
    dense = [w for w in head.head.weights if len(w.shape) == 2]
    assert padded["by_op"]["MatMul"] == 2 * slots * sum(int(w.shape[0]) * int(w.shape[1]) for w in dense)
    assert dynamic["by_op"].get("MatMul", 0) == 0


def test_relu6_forms_times_both_forms_and_keys_the_file_by_simd_and_isa_limit(tmp_path, monkeypatch):
    import relu6_forms

    from keras_det.layers import relu6

    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")  # recorded as the key; the form auto picks follows it
    out = tmp_path / "relu6.json"
    relu6_forms.main(["--models", "ssdlite", "--batches", "1", "2", "--rounds", "1", "--output", str(out)])
    payload = json.loads(out.read_text())
    key = relu6_forms.run_key(payload[next(iter(payload))]["machine"])
    assert list(payload) == [key] and key.endswith(" restricted to AVX2")
    assert relu6_forms.run_key({"simd": "AVX2", "isa_limit": {}}) == "AVX2"  # an AVX2 CPU's own run
    rows = payload[key]["rows"]
    assert [(r["model"], r["batch"]) for r in rows] == [("ssdlite", 1), ("ssdlite", 2)]
    for r in rows:
        assert r["identical_outputs"] and r["ms"]["fused"] > 0 and r["ms"]["split"] > 0
    assert [r["auto_picks"] for r in rows] == ["split", "fused"]
    assert relu6.RELU6_FORM == "auto"  # restored after tracing each form
