"""tf.data input pipelines following the keras_det data contract.

``load(source, split, bounding_box_format="xyxy", with_info=False, **options)``
returns an unbatched ``tf.data.Dataset`` of::

    {"images": float32 [H, W, 3] in 0..255,
     "bounding_boxes": {"boxes": float32 [N, 4] in bounding_box_format,
                        "labels": int32 [N], 0-based,
                        ["difficult": bool [N]], ["is_crowd": bool [N]]},
     "image_id": int64 [],
     "file_name": string [],
     ["masks": uint8 [N, H, W]]}     # shapes; COCO folders with with_masks=True

``source`` is ``"shapes"`` (embedded synthetic set, `shapes`), a local folder
or COCO json (COCO, VOC devkit, LabelImg or YOLO layout, detected), or a
TFDS name (``"voc/2007"``, ``"coco/2017"``). ``with_info=True`` also returns
a `DatasetInfo` whose ``class_names[i]`` names label ``i``.
``batch`` / ``pipeline`` pad to ``boxes [B, M, 4]``, ``labels [B, M]`` (-1).

``file_name``: the image's path relative to the split's image root
(``JPEGImages/``, the LabelImg image folder, ``images/<split>/``, the COCO
``file_name``); TFDS → ``image/filename`` (else ``""``); shapes →
``"<split>/<index>.png"`` (synthetic, there is no file).
``image_id``: COCO → the COCO image id; VOC, LabelImg, YOLO →
`file_image_id` (``file_name``) — a stable 53-bit hash, collision-checked, so
``keras-det predict`` and the Beam pipelines give a file the same id as
``load``; TFDS → ``image/id`` or the digits of the file name; shapes → the
element's index. ``info.image_files`` / ``info.file_names`` /
``info.image_ids`` list them in dataset order.

Class order: shapes → `SHAPES_CLASS_NAMES`; COCO → categories sorted by id
(``info.category_ids``); VOC / LabelImg → the 20 standard VOC classes if
every name found belongs to them, else the sorted names found in all the
folder's XMLs; YOLO → file order of ``data.yaml`` / ``classes.txt``; TFDS →
the builder's ``ClassLabel`` order. ``class_names=`` overrides (folder readers
other than COCO).

Bad-input policy (folder readers; annotations are parsed at load time, so
errors come from ``load`` as `DataError`, a ``ValueError``, naming the file,
the entry and the field):
  * missing annotation file / split list / image folder → error; a split
    list that is empty, not UTF-8, or lists one image twice → error.
  * image file missing, a broken link, not a JPEG/PNG/GIF/BMP/WebP, truncated
    (no JPEG end-of-image / PNG ``IEND``), a JPEG with a bad frame header
    (SOF), a PNG chunk with a bad CRC, larger than TensorFlow decodes ("too
    large"), or corrupt data that libjpeg only warns about (a JPEG with its
    middle cut out) → error at load time (``check_images=True``: the file
    is read, its structure walked and decoded once with OpenCV, JPEGs at
    1/8 scale; ``check_images="header"``: structure only, no decoding).
    With ``check_images=False`` nothing is checked at load time and the
    images are decoded in a ``tf.py_function``: a bad file fails at
    iteration with an error naming it. An image whose size differs from
    its annotation's fails at iteration with an error naming the file.
  * an image file name that is not valid UTF-8 → error (rename the file).
  * malformed JSON / XML / YAML / label line, a text file that is not UTF-8,
    COCO entries of the wrong type (a top level that is not an object,
    ``images`` not a list, ``annotations: null``, a missing or non-integer
    ``id``, a missing ``file_name`` / ``name``, ``height: "tall"``, a
    ``bbox`` that is not 4 numbers), VOC ``<difficult>`` not 0 / 1 → error.
  * the same COCO image id twice, one ``file_name`` under two ids, two
    categories with one id → error naming both entries; VOC / YOLO file
    names that share an id (`assign_file_ids`) → error naming both.
  * COCO segmentations (``with_masks=True``): a polygon with an odd number
    of coordinates, or RLE counts that do not sum to ``h * w`` → error.
  * YOLO: ``names: {0: cat, 2: dog}`` (indices not 0..n-1) or a class name
    listed twice → error; two images sharing a label file (``img1.jpg`` and
    ``img1.png``) → error naming both; a file with a label file but an
    unsupported format → error; a label file without an image (an orphan)
    → warning naming it, counted (``orphan_label_files``), not used.
  * NaN / inf coordinate, inverted box (``x2 < x1`` or ``y2 < y1``), box
    entirely outside the image → error (``drop_invalid=True``: dropped and
    counted instead).
  * unknown class name / category id / YOLO class index → error.
  * VOC / LabelImg names that are partly VOC classes, partly not → the
    sorted names found (not the 20 VOC classes), with a warning naming the
    first file with a non-VOC name.
  * box partly outside the image → clipped, counted in a warning.
  * zero-area box → dropped, counted in a warning (``info.stats``).
  * COCO crowd box → dropped, counted (``include_crowd=True`` keeps them).
  * image without objects → kept with ``N = 0`` (``skip_empty=True`` drops).
  * YOLO image without label file → no objects, counted.
Warnings go to the ``keras_det.data`` logger, one line per kind with a count
and an example file.
"""

from keras_det.data import augment  # noqa: F401
from keras_det.data.augment import (
    Compose,
    KerasLayer,
    RandomExpand,
    RandomFlip,
    RandomIoUCrop,
    ResizePad,
    default_augmentation,
    resize_pad,
    ssd_augmentation,
)
from keras_det.data.batching import batch, pipeline
from keras_det.data.core import DataError, DatasetInfo, file_image_id
from keras_det.data.describe import describe, format_description
from keras_det.data.loader import detect_layout, load, split_sizes
from keras_det.data.proposal_io import join_proposals, read_proposals, write_images  # noqa: F401
from keras_det.data.shapes import CLASS_NAMES as SHAPES_CLASS_NAMES
from keras_det.data.to_coco import to_coco  # noqa: F401
from keras_det.data.voc import VOC_CLASSES

__all__ = [
    "load",
    "batch",
    "pipeline",
    "detect_layout",
    "split_sizes",
    "describe",
    "format_description",
    "DatasetInfo",
    "DataError",
    "file_image_id",
    "SHAPES_CLASS_NAMES",
    "VOC_CLASSES",
    "augment",
    "Compose",
    "KerasLayer",
    "RandomIoUCrop",
    "RandomExpand",
    "RandomFlip",
    "ResizePad",
    "resize_pad",
    "default_augmentation",
    "ssd_augmentation",
]
