"""Builds small COCO / VOC / LabelImg / YOLO folders from scikit-image photos.

Each photo is downscaled so its longer side is 128 px; boxes are placed by
hand in those pixel coordinates (continuous ``xyxy``).
"""

import json
import os

import cv2
import numpy as np
import skimage.data

# name -> list of (class name, [x1, y1, x2, y2]) in the downscaled image.
OBJECTS = {
    "chelsea": [("cat", [30.0, 5.0, 100.0, 84.0])],  # 85 x 128
    "astronaut": [
        ("person", [10.0, 2.0, 110.0, 128.0]),
        ("rocket", [2.0, 5.0, 30.0, 40.0]),
    ],  # 128 x 128
    "coffee": [("cup", [20.0, 10.0, 95.0, 80.0])],  # 85 x 128
    "rocket": [
        ("rocket", [45.0, 4.0, 75.0, 80.0]),
        ("person", [100.0, 60.0, 110.0, 80.0]),
        ("cup", [0.0, 70.0, 12.0, 85.0]),
    ],  # 85 x 128
}
TRAIN = ("chelsea", "astronaut", "coffee")
VAL = ("rocket",)
SORTED_NAMES = ("cat", "cup", "person", "rocket")
# VOC-standard names for the devkit's "standard classes" order.
VOC_RENAME = {"cat": "cat", "person": "person", "cup": "bottle", "rocket": "aeroplane"}


def bccd_path():
    """The BCCD folder (``<ancestor>/shared/datasets/bccd`` of this checkout), else ``None``.

    Looked up in every parent of the repository (a worktree sits deeper than
    the main checkout); ``KERAS_DET_BCCD`` overrides.
    """
    if os.environ.get("KERAS_DET_BCCD"):
        return os.environ["KERAS_DET_BCCD"]
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    while True:
        candidate = os.path.join(os.path.dirname(here), "shared", "datasets", "bccd")
        if os.path.isdir(candidate):
            return candidate
        if os.path.dirname(here) == here:
            return None
        here = os.path.dirname(here)


def photo(name):
    image = getattr(skimage.data, name)()
    h, w = image.shape[:2]
    s = 128.0 / max(h, w)
    return cv2.resize(image, (int(round(w * s)), int(round(h * s))), interpolation=cv2.INTER_AREA)


def write_jpeg(path, image):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    cv2.imwrite(path, image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])


def write_coco(root, splits=(("train", TRAIN), ("val", VAL)), layout="split_dirs"):
    """``root/annotations/instances_<split>.json`` + ``root/images/<split>/``."""
    os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
    names = ["person", "cat", "rocket", "cup"]
    cat_ids = {"person": 1, "cat": 17, "rocket": 5, "cup": 47}  # deliberately not sorted by name
    ann_id = 1
    for split, image_names in splits:
        images, anns = [], []
        for k, name in enumerate(image_names):
            img = photo(name)
            image_id = 100 + 10 * k + len(split)
            write_jpeg(os.path.join(root, "images", split, name + ".jpg"), img)
            images.append(
                {
                    "id": image_id,
                    "file_name": name + ".jpg",
                    "height": img.shape[0],
                    "width": img.shape[1],
                }
            )
            for cls, (x1, y1, x2, y2) in OBJECTS[name]:
                anns.append(
                    {
                        "id": ann_id,
                        "image_id": image_id,
                        "category_id": cat_ids[cls],
                        "bbox": [x1, y1, x2 - x1, y2 - y1],
                        "iscrowd": 0,
                        "area": (x2 - x1) * (y2 - y1),
                    }
                )
                ann_id += 1
        cats = [{"id": cat_ids[n], "name": n} for n in names]
        with open(os.path.join(root, "annotations", f"instances_{split}.json"), "w") as f:
            json.dump({"images": images, "annotations": anns, "categories": cats}, f)
    return root


def voc_xml(filename, shape, objects, difficult=()):
    h, w = shape[:2]
    parts = [
        f"<annotation><folder>x</folder><filename>{filename}</filename>",
        f"<size><width>{w}</width><height>{h}</height><depth>3</depth></size>",
    ]
    for i, (cls, (x1, y1, x2, y2)) in enumerate(objects):
        parts.append(
            f"<object><name>{cls}</name><difficult>{int(i in difficult)}</difficult><bndbox>"
            f"<xmin>{x1 + 1:g}</xmin><ymin>{y1 + 1:g}</ymin><xmax>{x2:g}</xmax><ymax>{y2:g}</ymax>"
            "</bndbox></object>"
        )
    parts.append("</annotation>")
    return "".join(parts)


def write_voc_devkit(root, rename=None):
    """``root/VOC2007/{Annotations,JPEGImages,ImageSets/Main}``; one-based VOC coordinates."""
    base = os.path.join(root, "VOC2007")
    for d in ("Annotations", "JPEGImages", os.path.join("ImageSets", "Main")):
        os.makedirs(os.path.join(base, d), exist_ok=True)
    rename = rename or {}
    for split, image_names in (("train", TRAIN), ("val", VAL)):
        with open(os.path.join(base, "ImageSets", "Main", f"{split}.txt"), "w") as f:
            f.write("".join(f"{n}\n" for n in image_names))
        for name in image_names:
            img = photo(name)
            write_jpeg(os.path.join(base, "JPEGImages", name + ".jpg"), img)
            objs = [(rename.get(c, c), b) for c, b in OBJECTS[name]]
            with open(os.path.join(base, "Annotations", name + ".xml"), "w") as f:
                f.write(voc_xml(name + ".jpg", img.shape, objs, difficult=(1,)))
    return root


def write_labelimg(root):
    """``root/images/*.jpg`` + ``root/annotations/*.xml`` (no split lists)."""
    for name in TRAIN + VAL:
        img = photo(name)
        write_jpeg(os.path.join(root, "images", name + ".jpg"), img)
        os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
        with open(os.path.join(root, "annotations", f"ann_{name}.xml"), "w") as f:
            f.write(voc_xml(name + ".jpg", img.shape, OBJECTS[name]))
    return root


YOLO_NAMES = ("rocket", "person", "cup", "cat")  # file order, not sorted


def write_yolo(root, names_file="data.yaml"):
    """``root/images/<split>/``, ``root/labels/<split>/`` and the class names file."""
    for split, image_names in (("train", TRAIN), ("val", VAL)):
        for name in image_names:
            img = photo(name)
            h, w = img.shape[:2]
            write_jpeg(os.path.join(root, "images", split, name + ".jpg"), img)
            os.makedirs(os.path.join(root, "labels", split), exist_ok=True)
            with open(os.path.join(root, "labels", split, name + ".txt"), "w") as f:
                for cls, (x1, y1, x2, y2) in OBJECTS[name]:
                    f.write(
                        f"{YOLO_NAMES.index(cls)} {(x1 + x2) / 2 / w:.8f} {(y1 + y2) / 2 / h:.8f} "
                        f"{(x2 - x1) / w:.8f} {(y2 - y1) / h:.8f}\n"
                    )
    if names_file == "data.yaml":
        with open(os.path.join(root, "data.yaml"), "w") as f:
            f.write(
                "path: .\ntrain: images/train\nval: images/val\nnames:\n"
                + "".join(f"  {i}: {n}\n" for i, n in enumerate(YOLO_NAMES))
            )
    else:
        with open(os.path.join(root, "classes.txt"), "w") as f:
            f.write("\n".join(YOLO_NAMES) + "\n")
    return root


def expected(image_names, class_order, rename=None):
    """[(boxes xyxy [N, 4], labels [N], (h, w))] for the images, in order."""
    rename = rename or {}
    out = []
    for name in image_names:
        h, w = photo(name).shape[:2]
        boxes = np.array([b for _, b in OBJECTS[name]], np.float32)
        labels = np.array([class_order.index(rename.get(c, c)) for c, _ in OBJECTS[name]], np.int32)
        out.append((boxes, labels, (h, w)))
    return out
