"""YOLO txt reader (Ultralytics / Darknet layout).

Layout: ``<folder>/images/<split>/*.{jpg,jpeg,png,bmp}`` and
``<folder>/labels/<split>/<stem>.txt`` (``validation`` also finds ``val`` /
``valid``). Each label line is ``class cx cy w h`` with the box normalized
by the image size. Class names, in file order (label = class index), come
from ``data.yaml`` (``names:`` as an inline list, a block list or a
``{index: name}`` mapping) or else ``classes.txt`` / ``obj.names`` (one per
line); ``class_names=`` overrides.

Splits: data.yaml's ``train:`` / ``val:`` / ``test:`` folders (`yaml_split_dirs`,
e.g. a Roboflow export's ``train/images``), else ``images/<split>/`` folders are
the splits. A folder with a single
pool of images (data.yaml naming one folder only; ``images/*.jpg`` +
``labels/*.txt``; or only one ``images/<name>/`` subfolder, whatever its
name) is divided like a flat LabelImg folder, by
``val_fraction`` / ``test_fraction`` (default 0.1 each) and ``split_seed``
(`core.fraction_split`; ``"all"`` returns the whole pool).

An image without a label file has no objects (the YOLO convention; the count
is logged). A line that is not 5 numbers, or a class index outside the
class list, is an error naming the file and line. ``file_name`` is
the image's path relative to ``images/<split>/`` and ``image_id`` its
`file_image_id` (images sorted by file name).
"""

import ast
import glob
import os
import re

import numpy as np

from keras_det.data.core import (
    assign_file_ids,
    IMAGE_EXTENSIONS,
    DataError,
    DatasetInfo,
    Record,
    Stats,
    check_image_file,
    clean_boxes,
    finish_records,
    records_to_dataset,
    split_candidates,
    fraction_split,
    SPLIT_SEED,
    TEST_FRACTION,
    VAL_FRACTION,
)


YAML_FILES = ("data.yaml", "dataset.yaml", "data.yml")


def yaml_split_dirs(folder):
    """``{"train" | "val" | "test": (image_dir, label_dir)}`` named by the folder's data.yaml.

    Ultralytics' ``train:`` / ``val:`` / ``test:`` entries are image folders
    relative to ``path:`` (or to the folder); a leading ``../`` that leaves the
    folder (Roboflow exports write ``../train/images``) is also tried inside
    it. Labels are in the same path with its last ``images`` component
    replaced by ``labels``. Entries that are not an existing folder, and
    files without PyYAML installed, give nothing.
    """
    path = next((os.path.join(folder, n) for n in YAML_FILES if os.path.isfile(os.path.join(folder, n))), None)
    if path is None:
        return {}
    try:
        import yaml
    except ImportError:
        return {}
    try:
        config = yaml.safe_load(open(path)) or {}
    except yaml.YAMLError as e:
        raise DataError(f"{path} is not valid YAML: {e}") from None
    if not isinstance(config, dict):
        return {}
    base = folder
    if isinstance(config.get("path"), str) and os.path.isdir(os.path.join(folder, config["path"])):
        base = os.path.join(folder, config["path"])
    dirs = {}
    for key in ("train", "val", "test"):
        entry = config.get(key)
        if not isinstance(entry, str):
            continue
        inside = entry
        while inside.startswith("../"):
            inside = inside[3:]
        for candidate in (os.path.join(base, entry), os.path.join(folder, inside)):
            candidate = os.path.normpath(candidate)
            if os.path.isdir(candidate):
                parts = candidate.split(os.sep)
                if "images" in parts:
                    i = len(parts) - 1 - parts[::-1].index("images")
                    labels = os.sep.join(parts[:i] + ["labels"] + parts[i + 1 :])
                else:
                    labels = candidate
                dirs[key] = (candidate, labels)
                break
    return dirs


def is_single_pool(folder):
    """Whether the YOLO folder's splits come from ``val_fraction`` / ``test_fraction``."""
    named = yaml_split_dirs(folder)
    if named:
        return len(set(named.values())) == 1
    return _single_pool(folder)[0] is not None


def _single_pool(folder):
    """``(image_dir, label_dir)`` of a YOLO folder with one pool of images, else ``(None, None)``.

    The pool is ``images/`` itself when it holds image files (labels in
    ``labels/``), or its only subfolder (``images/train`` and ``labels/train``).
    """
    images = os.path.join(folder, "images")
    if not os.path.isdir(images):
        return None, None
    if any(f.lower().endswith(IMAGE_EXTENSIONS) for f in os.listdir(images)):
        return images, os.path.join(folder, "labels")
    subs = [d for d in sorted(os.listdir(images)) if os.path.isdir(os.path.join(images, d))]
    if len(subs) == 1:
        return os.path.join(images, subs[0]), os.path.join(folder, "labels", subs[0])
    return None, None


def is_yolo_folder(folder):
    if os.path.isdir(os.path.join(folder, "images")) and os.path.isdir(os.path.join(folder, "labels")):
        return True
    return bool(yaml_split_dirs(folder))


def _names_from_yaml(path):
    """The ``names`` entry of a YOLO data.yaml (subset of YAML that these files use)."""
    try:
        import yaml  # optional: PyYAML handles every YAML form
    except ImportError:
        yaml = None
    with open(path) as f:
        text = f.read()
    if yaml is not None:
        names = (yaml.safe_load(text) or {}).get("names")
    else:
        names = None
        lines = text.splitlines()
        for i, line in enumerate(lines):
            m = re.match(r"^names\s*:\s*(.*?)\s*(#.*)?$", line)
            if not m:
                continue
            rest = m.group(1)
            if rest:
                try:
                    names = ast.literal_eval(rest)
                except (ValueError, SyntaxError):
                    names = [
                        v.strip().strip("'\"") for v in rest.strip("[]").split(",") if v.strip()
                    ]
                break
            items = []
            for sub in lines[i + 1 :]:
                if not sub.strip() or sub.strip().startswith("#"):
                    continue
                if not sub.startswith((" ", "\t", "-")):
                    break
                sub = sub.split(" #")[0].strip()
                if sub.startswith("-"):
                    items.append(sub[1:].strip().strip("'\""))
                else:
                    key, _, value = sub.partition(":")
                    items.append((int(key.strip()), value.strip().strip("'\"")))
            names = dict(items) if items and isinstance(items[0], tuple) else items
            break
    if isinstance(names, dict):
        names = [names[k] for k in sorted(names)]
    if not names:
        raise DataError(f"{path} has no `names:` list of class names.")
    return [str(n) for n in names]


def class_names_of(folder):
    for name in ("data.yaml", "dataset.yaml", "data.yml"):
        if os.path.isfile(os.path.join(folder, name)):
            return _names_from_yaml(os.path.join(folder, name))
    for name in ("classes.txt", "obj.names"):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            with open(path) as f:
                return [line.strip() for line in f if line.strip()]
    raise DataError(
        f"{folder}: no data.yaml, classes.txt or obj.names with the class names "
        "(or pass class_names=)."
    )


def read_yolo(
    folder,
    split,
    bounding_box_format="xyxy",
    class_names=None,
    skip_empty=False,
    drop_invalid=False,
    check_images=True,
    num_parallel_calls=None,
    val_fraction=VAL_FRACTION,
    test_fraction=TEST_FRACTION,
    split_seed=SPLIT_SEED,
):
    """Reads a YOLO folder; see the module docstring."""
    names = tuple(class_names) if class_names is not None else tuple(class_names_of(folder))
    image_dir = label_dir = None
    named = yaml_split_dirs(folder)
    if len(set(named.values())) == 1:
        # data.yaml names one folder (for every split it lists): a single pool.
        image_dir, label_dir = next(iter(named.values()))
        pooled = True
    elif named:
        key = next((k for k in split_candidates(split) if k in named), None)
        if key is None:
            raise DataError(
                f"YOLO folder {folder}: data.yaml names the splits {sorted(named)}, not {split!r}."
            )
        image_dir, label_dir = named[key]
        pooled = False
    else:
        # A single pool is divided by fractions even when asked for its own
        # name ("train"), so that the splits never overlap.
        image_dir, label_dir = _single_pool(folder)
        pooled = image_dir is not None
    for s in split_candidates(split) if image_dir is None else ():
        if os.path.isdir(os.path.join(folder, "images", s)):
            image_dir = os.path.join(folder, "images", s)
            label_dir = os.path.join(folder, "labels", s)
            break
    if image_dir is None:
        have = sorted(os.listdir(os.path.join(folder, "images")))
        raise DataError(
            f"YOLO split folder {os.path.join(folder, 'images', split)} does not exist "
            f"(found: {have})."
        )
    files = sorted(
        p for p in glob.glob(os.path.join(image_dir, "*")) if p.lower().endswith(IMAGE_EXTENSIONS)
    )
    if pooled:
        chosen = set(
            fraction_split(
                [os.path.basename(p) for p in files], split, val_fraction, test_fraction, split_seed, folder
            )
        )
        files = [p for p in files if os.path.basename(p) in chosen]
    stats = Stats()
    records = []
    for index, path in enumerate(files):
        stem = os.path.splitext(os.path.basename(path))[0]
        label_path = os.path.join(label_dir, stem + ".txt")
        if check_images:
            check_image_file(path, label_path)
        labels, boxes = [], []
        if not os.path.isfile(label_path):
            stats.add("missing_label_file", label_path)
        else:
            with open(label_path) as f:
                for line_no, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    parts = line.split()
                    try:
                        values = [float(v) for v in parts]
                    except ValueError:
                        values = None
                    if values is None or len(values) != 5 or values[0] != int(values[0]):
                        raise DataError(
                            f"{label_path} line {line_no}: expected `class cx cy w h`, "
                            f"got {line.strip()!r}."
                        )
                    cls = int(values[0])
                    if not 0 <= cls < len(names):
                        raise DataError(
                            f"{label_path} line {line_no}: unknown class id {cls} "
                            f"({len(names)} classes: {', '.join(names)})."
                        )
                    cx, cy, w, h = values[1:]
                    labels.append(cls)
                    boxes.append((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
        keep, rel = clean_boxes(
            np.asarray(boxes, np.float64).reshape(-1, 4),
            label_path,
            relative=True,
            drop_invalid=drop_invalid,
            stats=stats,
        )
        records.append(
            Record(
                file=path,
                image_id=index,
                boxes=rel,
                labels=np.asarray(labels, np.int32)[keep],
                where=label_path,
            )
        )
    records = finish_records(records, stats, "yolo", split, skip_empty)
    assign_file_ids(records, image_dir, f"yolo {folder!r} split {split!r}")
    ds = records_to_dataset(
        records, bounding_box_format, relative=True, num_parallel_calls=num_parallel_calls
    )
    info = DatasetInfo(
        name="yolo",
        split=split,
        class_names=names,
        bounding_box_format=bounding_box_format,
        num_examples=len(records),
        num_boxes=sum(len(r.labels) for r in records),
        source=folder,
        image_files=tuple(r.file for r in records),
        file_names=tuple(r.file_name for r in records),
        image_ids=tuple(r.image_id for r in records),
        stats=dict(stats.counts),
    )
    return ds, info
