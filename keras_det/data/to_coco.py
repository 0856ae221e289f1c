"""Ground truth of any `keras_det.data.load` source as a COCO JSON dict.

Lets COCO tooling (``evaluate_coco``, ``keras_det.beam.evaluate``, pycocotools)
score a VOC folder, a LabelImg/YOLO folder or a TFDS split. Category ids are
``label + 1`` (the TF OD API / exported SavedModel convention: 1-based).
Image ids are the elements' ``image_id`` (for folders `file_image_id` of the
``file_name``, which ``keras-det predict`` and ``keras_det.beam.predict`` give the
same file) and each image entry carries its ``file_name``. Elements with
``"keypoints"`` ``[N, K, 3]`` (``load("shapes", ..., with_keypoints=True)``)
give each annotation COCO ``keypoints`` ``[x1, y1, v1, ...]`` and
``num_keypoints`` (the points with ``v > 0``), and each category the
``keypoints`` names and ``skeleton`` of ``info.keypoints``, as COCO's person
keypoints file: ``evaluate_coco(..., iou_type="keypoints",
sigmas=info.keypoints["sigmas"])`` scores results against it.
"""

import numpy as np


def to_coco(dataset, info):
    """COCO ground-truth dict of an unbatched dataset loaded with ``bounding_box_format="xywh"``.

    Args:
        dataset: elements of the data contract with ``image_id`` and
            ``xywh`` boxes (``load(..., bounding_box_format="xywh")``).
        info: its `DatasetInfo` (class names, image files).

    Returns:
        dict with ``images``, ``annotations`` (``bbox`` xywh, ``area``
        (the box's), ``iscrowd``, ``difficult``; ``keypoints``,
        ``num_keypoints`` for keypoint elements) and ``categories``
        (``keypoints``, ``skeleton`` with keypoints).
    """
    if getattr(info, "bounding_box_format", "xywh") != "xywh":
        raise ValueError(f"to_coco needs a dataset loaded with bounding_box_format='xywh', not {info.bounding_box_format!r}.")
    images, annotations = [], []
    for element in dataset.as_numpy_iterator():
        image_id = int(element["image_id"])
        height, width = element["images"].shape[:2]
        entry = {"id": image_id, "height": int(height), "width": int(width)}
        if "file_name" in element:
            entry["file_name"] = element["file_name"].decode("utf-8", "surrogateescape")
        images.append(entry)
        boxes = element["bounding_boxes"]
        crowd = boxes.get("is_crowd", np.zeros(len(boxes["labels"]), bool))
        difficult = boxes.get("difficult", np.zeros(len(boxes["labels"]), bool))
        keypoints = element.get("keypoints")
        for j, (box, label, is_crowd, hard) in enumerate(zip(boxes["boxes"], boxes["labels"], crowd, difficult)):
            annotation = {
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": int(label) + 1,
                "bbox": [float(v) for v in box],
                "area": float(box[2] * box[3]),
                "iscrowd": int(bool(is_crowd)),
                "difficult": int(bool(hard)),
            }
            if keypoints is not None:
                points = np.asarray(keypoints[j], np.float64)
                annotation["keypoints"] = [float(v) for v in points.reshape(-1)]
                annotation["num_keypoints"] = int((points[:, 2] > 0).sum())
            annotations.append(annotation)
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(info.class_names)]
    definition = getattr(info, "keypoints", None)
    if definition:
        for category in categories:
            category["keypoints"] = list(definition["names"])
            category["skeleton"] = [list(pair) for pair in definition.get("skeleton", ())]
    return {"images": images, "annotations": annotations, "categories": categories}
