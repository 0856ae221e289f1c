"""keras-det evaluate --iou-type segm / keypoints on COCO files: pycocotools' numbers, per class."""

import json

import numpy as np
import pytest

from keras_det import cli
from tests.metrics.coco_cases import make_keypoints_case, make_segm_case, pycocotools_eval

pytest.importorskip("pycocotools")


@pytest.mark.parametrize("iou_type", ["segm", "keypoints"])
def test_evaluate_iou_type(tmp_path, iou_type, capsys):
    if iou_type == "segm":
        gt, res, _ = make_segm_case(11, num_images=6, big_image_prob=0.0)
    else:
        gt, res = make_keypoints_case(11, num_images=10)
    gt_path, res_path = tmp_path / "gt.json", tmp_path / "res.json"
    gt_path.write_text(json.dumps(gt))
    res_path.write_text(json.dumps(res))
    out = tmp_path / "eval"
    assert cli.main(["evaluate", "--results", str(res_path), "--data", str(gt_path), "--iou-type", iou_type,
                     "--output", str(out)]) == 0
    metrics = json.load(open(out / "metrics.json"))
    ref = pycocotools_eval(gt, res, iou_type)
    keys = ["AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"] if iou_type == "keypoints" else \
        ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]
    np.testing.assert_allclose([metrics[k] for k in keys], ref.stats, atol=1e-9)
    assert metrics["iou_type"] == iou_type and metrics["per_class"]
    assert f"COCO ({iou_type}) evaluation" in capsys.readouterr().out
    # A results file of boxes only is an error naming the file, the entry and the missing field.
    field = "segmentation" if iou_type == "segm" else "keypoints"
    res_path.write_text(json.dumps([{k: v for k, v in res[0].items() if k != field}]))
    assert cli.main(["evaluate", "--results", str(res_path), "--data", str(gt_path), "--iou-type", iou_type]) == 2
    assert f"results entry 0 has no '{field}' field" in capsys.readouterr().err
