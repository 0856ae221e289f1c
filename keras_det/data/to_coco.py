"""Ground truth of any `keras_det.data.load` source as a COCO JSON dict.

Lets COCO tooling (``evaluate_coco``, ``keras_det.beam.evaluate``, pycocotools)
score a VOC folder, a LabelImg/YOLO folder or a TFDS split. Category ids are
``label + 1`` (the TF OD API / exported SavedModel convention: 1-based).
Image ids are the elements' ``image_id`` (for folders `file_image_id` of the
``file_name``, which ``keras-det predict`` and ``keras_det.beam.predict`` give the
same file) and each image entry carries its ``file_name``.
"""

import numpy as np


def to_coco(dataset, info):
    """COCO ground-truth dict of an unbatched dataset loaded with ``bounding_box_format="xywh"``.

    Args:
        dataset: elements of the data contract with ``image_id`` and
            ``xywh`` boxes (``load(..., bounding_box_format="xywh")``).
        info: its `DatasetInfo` (class names, image files).

    Returns:
        dict with ``images``, ``annotations`` (``bbox`` xywh, ``area``,
        ``iscrowd``, ``difficult``) and ``categories``.
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
        for box, label, is_crowd, hard in zip(boxes["boxes"], boxes["labels"], crowd, difficult):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(label) + 1,
                    "bbox": [float(v) for v in box],
                    "area": float(box[2] * box[3]),
                    "iscrowd": int(bool(is_crowd)),
                    "difficult": int(bool(hard)),
                }
            )
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(info.class_names)]
    return {"images": images, "annotations": annotations, "categories": categories}
