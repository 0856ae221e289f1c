"""Pascal VOC XML readers: the VOCdevkit layout and the flat LabelImg layout.

VOCdevkit (``load(folder, split)`` with ``folder`` = ``VOC2007`` or a folder
holding exactly one ``VOC*`` subfolder): ``Annotations/<id>.xml``,
``JPEGImages/<filename>``, split list ``ImageSets/Main/<split>.txt``
(``validation`` also finds ``val.txt``). An id listed there without an XML
file is an error.

LabelImg (flat): ``annotations/*.xml`` (or ``Annotations/``) and ``images/``;
each XML's ``<filename>`` names its image inside ``images/``. If
``<folder>/<split>.txt`` or ``<folder>/ImageSets/Main/<split>.txt`` lists XML
stems, that is the split; otherwise the XML stems (sorted by name) are
permuted with ``split_seed`` (default 0) and divided by `core.fraction_split`:
``test_fraction`` (default 0.1) to ``"test"``, ``val_fraction`` (default
0.1) to ``"validation"`` (each at least one image when > 0), the rest to
``"train"``; ``"all"`` returns every XML.

Coordinates: VOC pixel indices are 1-based and inclusive; with
``one_based=True`` (default) ``xmin``/``ymin`` are reduced by 1 and
``xmax``/``ymax`` kept, which gives the continuous 0-based box covering the
same pixels. Pass ``one_based=False`` for tools that write 0-based
continuous coordinates.

Class order: the 20 standard VOC classes (`VOC_CLASSES`, alphabetical) when
every name found in the folder's XMLs is one of them; otherwise the sorted
set of names found in all XMLs (not just the split, so labels agree across
splits). ``class_names=`` fixes the order; a name outside it is an error.
``<difficult>`` is carried as ``bounding_boxes["difficult"]`` (bool ``[N]``).
``file_name`` is the image's path relative to ``JPEGImages/`` (VOC) or to the
LabelImg image folder, and ``image_id`` its `file_image_id`: stable whatever
order a split lists it in, and what ``keras-det predict`` gives the same file.
"""

import glob
import os
import xml.etree.ElementTree as ET

import numpy as np

from keras_det.data.core import (
    logger,
    read_text_lines,
    assign_file_ids,
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

VOC_CLASSES = (
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)


def find_devkit(folder):
    """The VOC year folder inside ``folder`` (or ``folder`` itself), else ``None``."""
    if os.path.isdir(os.path.join(folder, "Annotations")) and os.path.isdir(
        os.path.join(folder, "JPEGImages")
    ):
        return folder
    subs = [
        d
        for d in sorted(glob.glob(os.path.join(folder, "VOC*")))
        if os.path.isdir(os.path.join(d, "Annotations"))
    ]
    if len(subs) == 1:
        return subs[0]
    if len(subs) > 1:
        raise DataError(
            f"{folder} holds several VOC folders ({', '.join(subs)}); pass one of them."
        )
    return None


def find_labelimg(folder):
    """``(annotation_dir, image_dir)`` of a flat LabelImg folder, else ``None``."""
    for ann in ("annotations", "Annotations"):
        ann_dir = os.path.join(folder, ann)
        if os.path.isdir(ann_dir) and glob.glob(os.path.join(ann_dir, "*.xml")):
            img_dir = os.path.join(folder, "images")
            return ann_dir, (img_dir if os.path.isdir(img_dir) else folder)
    return None


def _text(node, tag, where, required=True):
    child = node.find(tag)
    if child is None or child.text is None:
        if required:
            raise DataError(f"{where}: missing <{tag}>.")
        return None
    return child.text.strip()


def parse_xml(xml_path, one_based=True):
    """Parses one VOC XML → dict(filename, height, width, names, boxes xyxy, difficult)."""
    if not os.path.isfile(xml_path):
        raise DataError(f"Annotation file {xml_path} does not exist.")
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as e:
        raise DataError(f"Annotation file {xml_path} is not valid XML: {e}") from None
    size = root.find("size")
    height = width = -1
    if size is not None:
        try:
            height = int(float(_text(size, "height", xml_path)))
            width = int(float(_text(size, "width", xml_path)))
        except ValueError:
            raise DataError(f"{xml_path}: <size> is not numeric.") from None
    names, boxes, difficult = [], [], []
    for i, obj in enumerate(root.findall("object")):
        names.append(_text(obj, "name", f"{xml_path} object {i}"))
        bnd = obj.find("bndbox")
        if bnd is None:
            raise DataError(f"{xml_path}: object {i} ({names[-1]}) has no <bndbox>.")
        coords = []
        for tag in ("xmin", "ymin", "xmax", "ymax"):
            value = _text(bnd, tag, f"{xml_path} object {i}")
            try:
                coords.append(float(value))
            except ValueError:
                raise DataError(
                    f"{xml_path}: object {i} <{tag}> is {value!r}, not a number."
                ) from None
        if one_based:
            coords[0] -= 1.0
            coords[1] -= 1.0
        boxes.append(coords)
        diff = _text(obj, "difficult", xml_path, required=False)
        try:
            flag = float(diff) if diff else 0.0
        except ValueError:
            flag = None
        if flag not in (0.0, 1.0):
            raise DataError(
                f"{xml_path}: object {i} ({names[-1]}) <difficult> is {diff!r}, expected 0 or 1."
            )
        difficult.append(flag == 1.0)
    return {
        "path": xml_path,
        "filename": _text(root, "filename", xml_path, required=False),
        "height": height if height > 0 else -1,
        "width": width if width > 0 else -1,
        "names": names,
        "boxes": np.asarray(boxes, np.float64).reshape(-1, 4),
        "difficult": np.asarray(difficult, bool),
    }


def _class_names(parsed_all, class_names):
    if class_names is not None:
        return tuple(class_names)
    found = set()
    for p in parsed_all:
        found.update(p["names"])
    if found <= set(VOC_CLASSES):
        return VOC_CLASSES
    if found & set(VOC_CLASSES):
        others = sorted(found - set(VOC_CLASSES))
        first = next(p.get("path", "?") for p in parsed_all if set(p["names"]) & set(others))
        logger.warning(
            "Class name(s) %s (first in %s) are not VOC classes, so the class list is the "
            "%d sorted names found (%s) instead of the 20 VOC classes; pass class_names= "
            "to choose.",
            others, first, len(found), ", ".join(sorted(found)),
        )
    return tuple(sorted(found))


def _read_split_list(path):
    """The ids of a split list file, one per line (first word).

    Raises:
        DataError: the file is not UTF-8 or lists no id.
    """
    ids = [line.split()[0] for line in read_text_lines(path, "split list") if line.strip()]
    if not ids:
        raise DataError(f"Split list {path} is empty: it lists no image.")
    return ids


def _to_records(items, names, reader, split, drop_invalid, check_images, stats):
    """items: list of (xml_path, image_path, parsed)."""
    label_of = {n: i for i, n in enumerate(names)}
    records = []
    for index, (xml_path, image_path, p) in enumerate(items):
        for i, n in enumerate(p["names"]):
            if n not in label_of:
                raise DataError(
                    f"{xml_path}: object {i} has unknown class name {n!r} "
                    f"(known: {', '.join(names)})."
                )
        check_image(image_path, xml_path, check_images)
        keep, boxes = clean_boxes(
            p["boxes"], xml_path, p["height"], p["width"], drop_invalid=drop_invalid, stats=stats
        )
        records.append(
            Record(
                file=image_path,
                image_id=index,
                boxes=boxes,
                labels=np.array([label_of[p["names"][i]] for i in keep], np.int32),
                height=p["height"],
                width=p["width"],
                difficult=p["difficult"][keep],
                where=xml_path,
            )
        )
    return records


def read_voc_devkit(
    folder,
    split,
    bounding_box_format="xyxy",
    class_names=None,
    one_based=True,
    skip_empty=False,
    drop_invalid=False,
    check_images=True,
    num_parallel_calls=None,
):
    """Reads a VOCdevkit year folder; see the module docstring."""
    main = os.path.join(folder, "ImageSets", "Main")
    list_path = next(
        (
            os.path.join(main, f"{s}.txt")
            for s in split_candidates(split)
            if os.path.isfile(os.path.join(main, f"{s}.txt"))
        ),
        None,
    )
    if list_path is None:
        have = sorted(
            os.path.basename(p)[:-4]
            for p in glob.glob(os.path.join(main, "*.txt"))
            if "_" not in os.path.basename(p)
        )
        raise DataError(
            f"VOC split file {os.path.join(main, split + '.txt')} does not exist "
            f"(found splits: {have})."
        )
    ids = _read_split_list(list_path)
    ann_dir = os.path.join(folder, "Annotations")
    items = []
    for image_id in ids:
        xml_path = os.path.join(ann_dir, image_id + ".xml")
        if not os.path.isfile(xml_path):
            raise DataError(f"Annotation file {xml_path} (listed in {list_path}) does not exist.")
        p = parse_xml(xml_path, one_based)
        items.append(
            (xml_path, os.path.join(folder, "JPEGImages", p["filename"] or image_id + ".jpg"), p)
        )
    if class_names is None:
        listed = {x[0] for x in items}
        others = [
            parse_xml(x, one_based)
            for x in sorted(glob.glob(os.path.join(ann_dir, "*.xml")))
            if x not in listed
        ]
        names = _class_names([x[2] for x in items] + others, None)
    else:
        names = tuple(class_names)
    stats = Stats()
    records = _to_records(items, names, "voc", split, drop_invalid, check_images, stats)
    records = finish_records(records, stats, "voc", split, skip_empty)
    return _finish(
        records, names, "voc", split, bounding_box_format, folder, stats, num_parallel_calls,
        image_root=os.path.join(folder, "JPEGImages"), checked_images=check_images,
    )


def read_labelimg(
    folder,
    split,
    bounding_box_format="xyxy",
    class_names=None,
    one_based=True,
    val_fraction=VAL_FRACTION,
    test_fraction=TEST_FRACTION,
    split_seed=SPLIT_SEED,
    skip_empty=False,
    drop_invalid=False,
    check_images=True,
    num_parallel_calls=None,
):
    """Reads a flat LabelImg folder; see the module docstring."""
    found = find_labelimg(folder)
    if found is None:
        raise DataError(f"{folder} has no annotations/*.xml files.")
    ann_dir, img_dir = found
    xmls = sorted(glob.glob(os.path.join(ann_dir, "*.xml")))
    stems = [os.path.splitext(os.path.basename(x))[0] for x in xmls]
    list_path = None
    for base in (folder, os.path.join(folder, "ImageSets", "Main")):
        for s in split_candidates(split):
            if os.path.isfile(os.path.join(base, f"{s}.txt")):
                list_path = os.path.join(base, f"{s}.txt")
                break
        if list_path:
            break
    if list_path is not None:
        chosen = _read_split_list(list_path)
        for s in chosen:
            if s not in stems:
                raise DataError(
                    f"Annotation file {os.path.join(ann_dir, s + '.xml')} "
                    f"(listed in {list_path}) does not exist."
                )
    else:
        chosen = fraction_split(stems, split, val_fraction, test_fraction, split_seed, folder)
    parsed = {s: parse_xml(os.path.join(ann_dir, s + ".xml"), one_based) for s in stems}
    names = _class_names(list(parsed.values()), class_names)
    items = []
    for s in chosen:
        p = parsed[s]
        if not p["filename"]:
            raise DataError(
                f"{os.path.join(ann_dir, s + '.xml')}: missing <filename> naming the image."
            )
        items.append((os.path.join(ann_dir, s + ".xml"), os.path.join(img_dir, p["filename"]), p))
    stats = Stats()
    records = _to_records(items, names, "labelimg", split, drop_invalid, check_images, stats)
    records = finish_records(records, stats, "labelimg", split, skip_empty)
    return _finish(
        records, names, "labelimg", split, bounding_box_format, folder, stats, num_parallel_calls,
        image_root=img_dir, checked_images=check_images,
    )


def _finish(
    records, names, reader, split, fmt, folder, stats, num_parallel_calls, image_root,
    checked_images=True,
):
    assign_file_ids(records, image_root, f"{reader} {folder!r} split {split!r}")
    ds = records_to_dataset(
        records, fmt, num_parallel_calls=num_parallel_calls, checked_images=bool(checked_images)
    )
    info = DatasetInfo(
        name=reader,
        split=split,
        class_names=tuple(names),
        bounding_box_format=fmt,
        num_examples=len(records),
        num_boxes=sum(len(r.labels) for r in records),
        source=folder,
        image_files=tuple(r.file for r in records),
        file_names=tuple(r.file_name for r in records),
        image_ids=tuple(r.image_id for r in records),
        stats=dict(stats.counts),
    )
    return ds, info
