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
is logged). Images are the files ending in `IMAGE_EXTENSIONS` (WebP
included); see `split_image_files` for two images sharing a label file
(error), a label file without an image (logged by name, not used) and other
files (logged). A line that is not 5 numbers, or a class index outside the
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
    read_text_lines,
    assign_file_ids,
    IMAGE_EXTENSIONS,
    DataError,
    DatasetInfo,
    Record,
    Stats,
    check_image,
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
    text = "\n".join(read_text_lines(path, "class names file"))
    if yaml is not None:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise DataError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
        if data is not None and not isinstance(data, dict):
            raise DataError(
                f"{path}: the top level is a {type(data).__name__}, expected a mapping "
                "with a `names:` entry."
            )
        names = (data or {}).get("names")
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
                    try:
                        items.append((int(key.strip()), value.strip().strip("'\"")))
                    except ValueError:
                        raise DataError(
                            f"{path}: `names:` entry {sub!r} is not `index: name`."
                        ) from None
            names = dict(items) if items and isinstance(items[0], tuple) else items
            break
    return _check_names(names, path)


def _check_names(names, path):
    """``names`` of a data.yaml (a list, or ``{index: name}`` with indices 0..n-1) → list."""
    if isinstance(names, dict):
        keys = list(names)
        if not all(isinstance(k, int) and not isinstance(k, bool) for k in keys):
            raise DataError(f"{path}: `names:` keys {keys} are not all class indices (integers).")
        if sorted(keys) != list(range(len(keys))):
            missing = sorted(set(range(max(keys, default=-1) + 1)) - set(keys))
            raise DataError(
                f"{path}: `names:` indices {sorted(keys)} are not 0..{len(keys) - 1} "
                f"(missing {missing}); class indices must be contiguous from 0."
            )
        names = [names[k] for k in sorted(keys)]
    if names is not None and not isinstance(names, list):
        raise DataError(f"{path}: `names:` is {names!r:.80}, expected a list or a mapping.")
    if not names:
        raise DataError(f"{path} has no `names:` list of class names.")
    for i, n in enumerate(names):
        if not isinstance(n, (str, int, float)) or isinstance(n, bool) or str(n).strip() == "":
            raise DataError(f"{path}: class {i} name {n!r} is not a name.")
    if len(set(map(str, names))) != len(names):
        raise DataError(f"{path}: `names:` lists a class name twice: {names}.")
    return [str(n) for n in names]


def split_image_files(image_dir, label_dir, stats):
    """The image files of a YOLO split, sorted, checked against the label files.

    Policy: images are the files with an `IMAGE_EXTENSIONS` ending (WebP
    included); two images with one stem (``img1.jpg`` and ``img1.png``) would
    share ``img1.txt`` → `DataError` naming both; a file with another ending
    that has a label file → `DataError` (unsupported image format); other
    files → counted and logged (``"not_images"``); a label file without an
    image (an orphan) → counted and logged by name (``"orphan_label_files"``),
    its boxes are not used.
    """
    stems, files = {}, []
    for p in sorted(glob.glob(os.path.join(image_dir, "*"))):
        if os.path.isdir(p):
            continue
        stem = os.path.splitext(os.path.basename(p))[0]
        if not p.lower().endswith(IMAGE_EXTENSIONS):
            if os.path.isfile(os.path.join(label_dir, stem + ".txt")):
                raise DataError(
                    f"{p} has a label file but is not a supported image "
                    f"({', '.join(IMAGE_EXTENSIONS)})."
                )
            stats.add("not_images", p)
            continue
        if stem in stems:
            raise DataError(
                f"{stems[stem]} and {p} would both take the label file "
                f"{os.path.join(label_dir, stem + '.txt')}; rename one of them."
            )
        stems[stem] = p
        files.append(p)
    if os.path.isdir(label_dir):
        orphans = sorted(
            f for f in os.listdir(label_dir)
            if f.endswith(".txt") and os.path.splitext(f)[0] not in stems
        )
        if orphans:
            shown = ", ".join(os.path.join(label_dir, f) for f in orphans[:5])
            stats.add("orphan_label_files", shown + (", ..." if len(orphans) > 5 else ""),
                      len(orphans))
    return files


def class_names_of(folder):
    for name in ("data.yaml", "dataset.yaml", "data.yml"):
        if os.path.isfile(os.path.join(folder, name)):
            return _names_from_yaml(os.path.join(folder, name))
    for name in ("classes.txt", "obj.names"):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            names = [line.strip() for line in read_text_lines(path, "class names file")]
            return _check_names([n for n in names if n], path)
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
    stats = Stats()
    files = split_image_files(image_dir, label_dir, stats)
    if pooled:
        chosen = set(
            fraction_split(
                [os.path.basename(p) for p in files], split, val_fraction, test_fraction, split_seed, folder
            )
        )
        files = [p for p in files if os.path.basename(p) in chosen]
    records = []
    for index, path in enumerate(files):
        stem = os.path.splitext(os.path.basename(path))[0]
        label_path = os.path.join(label_dir, stem + ".txt")
        check_image(path, label_path, check_images)
        labels, boxes = [], []
        if not os.path.isfile(label_path):
            stats.add("missing_label_file", label_path)
        else:
            for line_no, line in enumerate(read_text_lines(label_path, "label file"), 1):
                if not line.strip():
                    continue
                parts = line.split()
                try:
                    values = [float(v) for v in parts]
                except ValueError:
                    values = None
                if values is None or len(values) != 5 or not values[0].is_integer():
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
        records, bounding_box_format, relative=True, num_parallel_calls=num_parallel_calls,
        checked_images=bool(check_images),
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
