"""Shared pieces of the readers: `DatasetInfo`, box validation, image decoding.

Folder readers (COCO, VOC, YOLO) parse their annotations in Python once, at
load time, into a list of `Record`s; `records_to_dataset` turns those into a
`tf.data.Dataset` that reads and decodes the image files with a parallel
`map`. The policies for bad input are documented in `keras_det.data` (the
package docstring) and implemented here in `clean_boxes` and
`check_image_file`.
"""

import dataclasses
import logging
import os

import numpy as np
import tensorflow as tf

from keras_det.identity import (  # noqa: F401  (re-exported: the readers' identity)
    IMAGE_EXTENSIONS,
    file_image_id,
    normalize_file_name,
    relative_file_name,
)
from keras_det.ops import boxes as box_ops

logger = logging.getLogger("keras_det.data")

# Split names accepted for each other ("validation" is the TFDS / Keras name,
# "val" the COCO / VOC / YOLO folder name).
SPLIT_ALIASES = {
    "validation": ("validation", "val", "valid"),
    "val": ("val", "validation", "valid"),
    "valid": ("valid", "val", "validation"),
}


def assign_file_ids(records, root, where):
    """Gives each folder `Record` its ``file_name`` (relative to ``root``) and ``image_id``.

    Args:
        records: list of `Record` whose ``file`` is the image path.
        root: the folder the split's images are named relative to.
        where: the dataset, for messages.

    Raises:
        DataError: one image file is listed twice, or two file names share an
            id (astronomically unlikely: 53-bit hash), naming both entries.
    """
    seen = {}
    for r in records:
        r.file_name = relative_file_name(r.file, root)
        r.image_id = file_image_id(r.file_name)
        other = seen.get(r.image_id)
        if other is not None:
            if other.file_name == r.file_name:
                raise DataError(
                    f"{where}: image {r.file_name!r} is listed twice "
                    f"({other.where or other.file} and {r.where or r.file})."
                )
            raise DataError(
                f"{where}: image ids of {other.file_name!r} and {r.file_name!r} collide "
                f"({r.image_id}); rename one of the files."
            )
        seen[r.image_id] = r
    return records


# Defaults of the ``val_fraction`` / ``test_fraction`` load options: used only
# by folders without their own split lists (flat LabelImg, single-pool YOLO).
VAL_FRACTION = 0.1
TEST_FRACTION = 0.1
SPLIT_SEED = 0


def fraction_split(names, split, val_fraction=VAL_FRACTION, test_fraction=TEST_FRACTION, seed=SPLIT_SEED, where=""):
    """Divides a folder without split lists into train / validation / test.

    The names are sorted, permuted with ``numpy.random.default_rng(seed)``,
    and the first ``n_test`` go to ``"test"``, the next ``n_val`` to
    ``"validation"``, the rest to ``"train"``, with ``n_test =
    round(test_fraction * n)`` (at least 1 when ``test_fraction > 0``) and
    ``n_val`` likewise. The result depends only on the set of names, the
    fractions and the seed: stable across runs and machines, and adding
    files reshuffles (pin a split with ``<split>.txt`` lists).

    Args:
        names: the file names (or annotation stems) of the whole folder.
        split: ``"train"``, ``"validation"`` (``"val"``/``"valid"``),
            ``"test"`` or ``"all"``.
        val_fraction, test_fraction: shares of the folder; ``>= 0`` with a
            sum ``< 1``.
        seed: permutation seed.
        where: the folder, for messages.

    Returns:
        the names of ``split``, in sorted order.

    Raises:
        ValueError: fractions out of range; DataError: unknown split name.
    """
    names = sorted(names)
    if not (0 <= val_fraction and 0 <= test_fraction and val_fraction + test_fraction < 1):
        raise ValueError(
            "Need 0 <= val_fraction, test_fraction and a sum < 1, "
            f"got val_fraction={val_fraction}, test_fraction={test_fraction}."
        )
    if split == "all":
        return names
    n = len(names)

    def count(fraction):
        return max(1, int(round(fraction * n))) if fraction > 0 and n else 0

    order = np.random.default_rng(seed).permutation(n)
    n_test, n_val = count(test_fraction), count(val_fraction)
    parts = {
        "test": order[:n_test],
        "validation": order[n_test : n_test + n_val],
        "train": order[n_test + n_val :],
    }
    key = {"val": "validation", "valid": "validation"}.get(split, split)
    if key not in parts:
        raise DataError(
            f"{where}: no {split}.txt list and {split!r} is not one of train, validation, test, all."
        )
    return [names[i] for i in sorted(parts[key])]


def split_candidates(split):
    """Names to try, in order, for a split in a folder layout."""
    return SPLIT_ALIASES.get(split, (split,))


class DataError(ValueError):
    """Bad input data: names the file and the problem."""


@dataclasses.dataclass
class DatasetInfo:
    """What `keras_det.data.load(..., with_info=True)` returns next to the dataset.

    Attributes:
        name: ``"shapes"``, the TFDS name, or the reader (``"coco"``, ``"voc"``,
            ``"labelimg"``, ``"yolo"``).
        split: the split that was loaded.
        class_names: tuple of class names; label ``i`` is ``class_names[i]``.
        bounding_box_format: format of ``bounding_boxes["boxes"]``.
        num_examples: number of images in the split (``None`` if unknown).
        num_boxes: number of boxes in the split (folder readers; ``None`` if
            unknown).
        source: the folder / json path / TFDS name that was read.
        image_files: for folder readers, the image path of each element,
            in dataset order.
        file_names: for folder readers, each element's ``file_name`` (the
            path relative to the split's image root), in dataset order.
        image_ids: each element's ``image_id``, in dataset order (folder
            readers: `file_image_id` of the ``file_name``; COCO: its ids).
        category_ids: COCO only: the COCO ``category_id`` of each label.
        stats: counts of what the bad-input policy did (``"zero_area_dropped"``,
            ``"clipped"``, ``"crowd_dropped"``, ``"invalid_dropped"``, ...).
        keypoints: when the elements carry ``"keypoints"`` ``[N, K, 3]``, their
            definition: ``{"names": K names, "flip_indices": the slot
            permutation of a horizontal flip, "sigmas": K OKS sigmas,
            "skeleton": 1-based pairs}`` (``shapes``: its
            ``keypoint_metadata()``); else ``None``.
    """

    name: str
    split: str
    class_names: tuple
    bounding_box_format: str
    num_examples: int = None
    num_boxes: int = None
    source: str = None
    image_files: tuple = ()
    file_names: tuple = ()
    image_ids: tuple = ()
    category_ids: tuple = ()
    stats: dict = dataclasses.field(default_factory=dict)
    keypoints: dict = None

    @property
    def num_classes(self):
        return len(self.class_names)


@dataclasses.dataclass
class Record:
    """One image and its objects, as parsed from annotation files.

    ``boxes`` are float32 ``[N, 4]`` ``xyxy``, absolute pixels or, when the
    reader says so, relative (``rel_xyxy``); ``height``/``width`` are the size
    the annotation declares (``-1`` when unknown).
    """

    file: str
    image_id: int
    boxes: np.ndarray
    labels: np.ndarray
    height: int = -1
    width: int = -1
    difficult: np.ndarray = None
    is_crowd: np.ndarray = None
    where: str = ""  # the annotation file, for messages
    # Path relative to the split's image root ("/"-separated): the element's
    # "file_name", from which folder readers derive image_id (file_image_id).
    file_name: str = ""
    # JSON list of one segmentation per box ({"polygons": [[x, y, ...], ...]}
    # or {"rle": [counts], "size": [h, w]}), when instance masks are read.
    segmentation: str = None


class Stats:
    """Counts for the drop / clip policies, with one example each for the log."""

    def __init__(self):
        self.counts = {}
        self.examples = {}

    def add(self, key, where, n=1):
        if n <= 0:
            return
        self.counts[key] = self.counts.get(key, 0) + n
        self.examples.setdefault(key, where)

    def log(self, reader, split):
        messages = {
            "zero_area_dropped": "dropped {n} zero-area box(es)",
            "clipped": "clipped {n} box(es) extending outside their image",
            "crowd_dropped": "dropped {n} crowd annotation(s) (include_crowd=False)",
            "invalid_dropped": "dropped {n} invalid box(es) (drop_invalid=True)",
            "missing_label_file": "{n} image(s) have no label file (read as no objects)",
            "orphan_label_files": "{n} label file(s) have no image (not used)",
            "not_images": "{n} file(s) in the image folder are not images (not used)",
            "empty_images_skipped": "skipped {n} image(s) without objects (skip_empty=True)",
        }
        for key, n in self.counts.items():
            text = messages.get(key, key + ": {n}").format(n=n)
            logger.warning("%s %r: %s, e.g. %s", reader, split, text, self.examples[key])


def clean_boxes(boxes, where, height=-1, width=-1, relative=False, drop_invalid=False, stats=None):
    """Validates ``xyxy`` boxes of one image; returns the boxes to keep, clipped.

    Policy (see the `keras_det.data` docstring):
      * NaN / inf coordinate, inverted box (``x2 < x1`` or ``y2 < y1``), or a box
        entirely outside the image → `DataError` naming ``where`` and the object
        (or dropped and counted with ``drop_invalid=True``).
      * box partly outside the image → clipped to it, counted.
      * zero-area box (after clipping) → dropped, counted.

    Args:
        boxes: float array ``[N, 4]`` ``xyxy``, absolute or (``relative=True``)
            divided by the image size.
        where: text naming the annotation file (and image) for messages.
        height, width: declared image size, ``-1`` when unknown (then only
            the non-size checks run). Ignored when ``relative``.
        relative: boxes are in ``[0, 1]`` units.
        drop_invalid: drop instead of raising for the error cases.
        stats: a `Stats` to count into.

    Returns:
        ``(keep, boxes)``: int64 indices ``[K]`` and float32 ``[K, 4]``.
    """
    stats = stats if stats is not None else Stats()
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    keep = []
    out = []
    if relative:
        height = width = 1.0
    known = height > 0 and width > 0
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        problem = None
        if not np.all(np.isfinite([x1, y1, x2, y2])):
            problem = "has a NaN or infinite coordinate"
        elif x2 < x1 or y2 < y1:
            problem = "is inverted (x2 < x1 or y2 < y1)"
        elif (
            known
            and (x1 >= width or y1 >= height or x2 <= 0 or y2 <= 0)
            and not (x1 == x2 or y1 == y2)
        ):
            size = "1 x 1 (relative)" if relative else f"{width:g} x {height:g}"
            problem = f"lies entirely outside the {size} image"
        if problem:
            coords = [float(v) for v in (x1, y1, x2, y2)]
            message = f"{where}: object {i} box [x1, y1, x2, y2] = {coords} {problem}."
            if drop_invalid:
                stats.add("invalid_dropped", message)
                continue
            raise DataError(message)
        if known:
            c = [
                min(max(x1, 0.0), width),
                min(max(y1, 0.0), height),
                min(max(x2, 0.0), width),
                min(max(y2, 0.0), height),
            ]
            tol = 1e-6 if relative else 1e-3
            if max(abs(a - b) for a, b in zip(c, (x1, y1, x2, y2))) > tol:
                stats.add("clipped", f"{where} object {i}")
            x1, y1, x2, y2 = c
        if x2 - x1 <= 0 or y2 - y1 <= 0:
            stats.add("zero_area_dropped", f"{where} object {i}")
            continue
        keep.append(i)
        out.append((x1, y1, x2, y2))
    return np.asarray(keep, np.int64), np.asarray(out, np.float32).reshape(-1, 4)


_MAGIC = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
)
# TensorFlow's JPEG decoder refuses height * width * 3 >= 2**29 bytes ("Invalid JPEG
# data"); its PNG decoder refuses width * height beyond int32 max / 8.
_MAX_JPEG_BYTES = 1 << 29
_MAX_PNG_PIXELS = (2**31 - 1) // 8
_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC9, 0xCA}  # baseline, extended, progressive, arithmetic
_ANY_SOF = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _image_kind(head):
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return next((name for magic, name in _MAGIC if head.startswith(magic)), None)


def _too_large(path, ref, height, width, limit_text):
    return DataError(
        f"Image file {path}{ref} is too large to decode: {width} x {height} pixels "
        f"(TensorFlow decodes at most {limit_text}); downscale it."
    )


def _check_jpeg_structure(path, ref, data):
    """Walks the JPEG marker segments up to the first scan: a frame header (SOF) must
    come first with a non-zero size and 1, 3 or 4 components."""
    pos, size = 2, len(data)
    while pos + 4 <= size:
        if data[pos] != 0xFF:
            raise DataError(f"Image file {path}{ref} is a corrupt JPEG: no marker at byte {pos}.")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # standalone markers: no length
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker in _ANY_SOF:
            seg = data[pos + 4 : pos + 2 + length]
            if len(seg) < 6:
                raise DataError(f"Image file {path}{ref} is a corrupt JPEG: short SOF header.")
            if marker not in _SOF_MARKERS:
                raise DataError(
                    f"Image file {path}{ref} is an unsupported JPEG (frame type 0x{marker:02X}, "
                    "e.g. lossless or hierarchical)."
                )
            height = int.from_bytes(seg[1:3], "big")
            width = int.from_bytes(seg[3:5], "big")
            comps = seg[5]
            if seg[0] != 8:
                raise DataError(
                    f"Image file {path}{ref} is an unsupported JPEG: {seg[0]}-bit samples "
                    "(TensorFlow decodes 8-bit JPEGs)."
                )
            if height == 0 or width == 0 or comps not in (1, 3, 4):
                raise DataError(
                    f"Image file {path}{ref} is a corrupt JPEG: bad SOF header (height {height}, "
                    f"width {width}, {comps} components)."
                )
            if height * width * 3 >= _MAX_JPEG_BYTES:
                raise _too_large(path, ref, height, width, "2**29 bytes of RGB")
            return height, width
        if marker == 0xDA or length < 2:
            break
        pos += 2 + length
    raise DataError(f"Image file {path}{ref} is a corrupt JPEG: no valid SOF header before the scan.")


def _check_png_structure(path, ref, data):
    """Walks the PNG chunks: each chunk's CRC must match, IHDR first, IEND last."""
    import zlib

    pos, first, height, width = 8, True, 0, 0
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        ctype = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        crc = data[pos + 8 + length : pos + 12 + length]
        if len(body) < length or len(crc) < 4:
            break
        if zlib.crc32(ctype + body) != int.from_bytes(crc, "big"):
            raise DataError(
                f"Image file {path}{ref} is a corrupt PNG: bad CRC in chunk "
                f"{ctype.decode('latin-1')!r} at byte {pos}."
            )
        if first:
            if ctype != b"IHDR" or length != 13:
                raise DataError(f"Image file {path}{ref} is a corrupt PNG: no IHDR chunk first.")
            width, height = int.from_bytes(body[:4], "big"), int.from_bytes(body[4:8], "big")
            if width == 0 or height == 0:
                raise DataError(f"Image file {path}{ref} is a corrupt PNG: size {width} x {height}.")
            if width * height > _MAX_PNG_PIXELS:
                raise _too_large(path, ref, height, width, f"{_MAX_PNG_PIXELS} pixels of PNG")
            first = False
        if ctype == b"IEND":
            return height, width
        pos += 12 + length
    raise DataError(f"Image file {path}{ref} is a corrupt PNG: truncated (no IEND chunk).")


def _decode_check(path, ref, data, kind):
    """Decodes ``data`` with OpenCV (JPEG at 1/8 scale: full entropy decoding, little IDCT)
    and turns libjpeg's warnings ("Corrupt JPEG data: premature end of data segment",
    printed on stderr and otherwise ignored) into an error."""
    import sys
    import tempfile

    import cv2

    flag = cv2.IMREAD_REDUCED_GRAYSCALE_8 if kind == "JPEG" else cv2.IMREAD_UNCHANGED
    buf = np.frombuffer(data, np.uint8)
    sys.stderr.flush()
    with tempfile.TemporaryFile() as log:
        saved = os.dup(2)
        os.dup2(log.fileno(), 2)
        try:
            image = cv2.imdecode(buf, flag)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        log.seek(0)
        messages = log.read().decode("utf-8", "replace")
    # libjpeg's messages name JPEG ("Corrupt JPEG data: ...", "Premature end of JPEG
    # file"); other output caught meanwhile (another thread's logs) does not count.
    problems = [line.strip() for line in messages.splitlines() if "JPEG" in line or "libpng" in line]
    others = [line for line in messages.splitlines() if line.strip() not in problems]
    if others:  # someone else's output during the capture: pass it on
        sys.stderr.write("\n".join(others) + "\n")
    if image is None or problems:
        detail = "; ".join(problems) or "the decoder cannot read it"
        raise DataError(f"Image file {path}{ref} is a corrupt {kind}: {detail}.")


def check_image_file(path, where=None, decode=True):
    """Load-time check that ``path`` is a complete, decodable JPEG/PNG/GIF/BMP/WebP file.

    Checks the format signature; JPEG: the frame header (size, components)
    and the end-of-image marker; PNG: every chunk's CRC and the ``IEND``
    chunk; the size against TensorFlow's decode limits ("too large"); and,
    with ``decode``, decodes JPEG / BMP / WebP files with OpenCV (JPEG at
    1/8 scale, about 0.7 ms for 640 x 480 on one core) so that corrupt data
    libjpeg only warns about (a JPEG with its middle cut out) is an error
    too, and GIFs with TensorFlow. libjpeg prints its warnings on the
    process's stderr: the check redirects file descriptor 2 for the call
    (so run it from one thread at a time; other output caught meanwhile is
    written back). Problems
    are reported at load time by name instead of failing later inside
    ``tf.io.decode_image`` with a message that names no file.

    Args:
        path: the image file.
        where: the annotation that refers to it, for messages.
        decode: also decode the file (``check_images=True``); ``False`` for
            the header checks only (``check_images="header"``).

    Returns:
        The format name (``"JPEG"``, ``"PNG"``, ``"GIF"``, ``"BMP"``, ``"WEBP"``).

    Raises:
        DataError: naming the file (and ``where``) and the problem.
    """
    ref = f" (referenced by {where})" if where else ""
    if os.path.islink(path) and not os.path.exists(path):
        raise DataError(f"Image file {path}{ref} is a broken symbolic link.")
    if not os.path.isfile(path):
        raise DataError(f"Image file {path}{ref} does not exist.")
    with open(path, "rb") as f:
        data = f.read()
    head, tail = data[:16], data[-1024:]
    kind = _image_kind(head)
    if kind is None:
        raise DataError(
            f"Image file {path}{ref} is corrupt or not a JPEG/PNG/GIF/BMP/WebP image "
            f"(starts with bytes {head[:8]!r})."
        )
    if kind == "JPEG":
        if b"\xff\xd9" not in tail:
            raise DataError(
                f"Image file {path}{ref} is a corrupt JPEG: truncated (no end-of-image marker)."
            )
        _check_jpeg_structure(path, ref, data)
    elif kind == "PNG":
        if b"IEND" not in tail:
            raise DataError(f"Image file {path}{ref} is a corrupt PNG: truncated (no IEND chunk).")
        _check_png_structure(path, ref, data)
    if decode and kind in ("JPEG", "BMP", "WEBP"):  # PNG: the CRC walk covers it
        _decode_check(path, ref, data, kind)
    elif decode and kind == "GIF":  # not every OpenCV build reads GIF: TensorFlow, eagerly
        try:
            tf.io.decode_gif(data)
        except tf.errors.OpError as error:
            raise DataError(
                f"Image file {path}{ref} is a corrupt GIF: {error.message.strip()}"
            ) from None
    return kind


def check_image(path, where, check_images):
    """`check_image_file` as the readers' ``check_images`` option asks: ``True`` (full
    check, decoding too), ``"header"`` (structure only), ``False`` (none)."""
    if check_images not in (True, False, "header"):
        raise ValueError(f"check_images must be True, False or 'header', got {check_images!r}.")
    if check_images:
        check_image_file(path, where, decode=check_images is True)


def _decode_named(path):
    """Eager decode used by ``check_images=False``: failures raise naming the file."""
    path = path.numpy().decode("utf-8", "surrogateescape")
    try:
        check_image_file(path, decode=False)
        data = tf.io.read_file(path)
        return tf.io.decode_image(data, channels=3, dtype=tf.uint8, expand_animations=False)
    except DataError:
        raise
    except Exception as error:  # any decoder failure: name the file
        message = getattr(error, "message", None) or str(error)
        raise DataError(f"Image file {path} cannot be decoded: {message.strip()}") from None


def decode_image(path, declared_hw=None, named_errors=False):
    """Reads and decodes an image file in-graph → float32 ``[H, W, 3]`` in 0..255.

    If ``declared_hw`` (int32 ``[2]``) is positive, asserts that the decoded
    size matches it; the error names the file. With ``named_errors`` the file
    is read and decoded in a ``tf.py_function`` so that any failure (corrupt,
    truncated, not an image) raises an error naming the file (used when the
    files were not checked at load time: ``check_images=False``).
    """
    if named_errors:
        image = tf.py_function(_decode_named, [path], tf.uint8)
    else:
        data = tf.io.read_file(path)
        # dtype=uint8 also scales 16-bit PNGs into 0..255.
        image = tf.io.decode_image(data, channels=3, dtype=tf.uint8, expand_animations=False)
    image.set_shape([None, None, 3])
    if declared_hw is not None:
        shape = tf.shape(image)[:2]
        ok = tf.logical_or(
            tf.reduce_any(declared_hw <= 0), tf.reduce_all(tf.equal(shape, declared_hw))
        )
        with tf.control_dependencies(
            [
                tf.debugging.Assert(
                    ok,
                    [
                        "Image file",
                        path,
                        "decoded to height, width",
                        shape,
                        "but its annotation declares",
                        declared_hw,
                    ],
                    summarize=4,
                )
            ]
        ):
            image = tf.identity(image)
    return tf.cast(image, tf.float32)


def read_text_lines(path, what="file"):
    """The lines of a UTF-8 text file (``utf-8-sig``: a BOM is allowed).

    Raises:
        DataError: the file is not valid UTF-8, naming it and the byte offset.
    """
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(
            f"{what.capitalize()} {path} is not valid UTF-8 text (byte {e.start}: "
            f"{raw[e.start:e.start + 4]!r})."
        ) from None
    return text.splitlines()


def check_file_names(records):
    """Every `Record`'s path and ``file_name`` must be valid UTF-8 (TensorFlow strings).

    Raises:
        DataError: naming the file (its bytes shown escaped) and the annotation.
    """
    for r in records:
        for value in (r.file, r.file_name):
            try:
                str(value).encode("utf-8")
            except UnicodeEncodeError:
                esc = lambda v: str(v).encode("utf-8", "surrogateescape").decode(  # noqa: E731
                    "utf-8", "backslashreplace"
                )
                shown = esc(r.file)
                ref = f" (referenced by {esc(r.where)})" if r.where and r.where != r.file else ""
                raise DataError(
                    f"Image file name {shown}{ref} is not valid UTF-8; rename the file."
                ) from None


def records_to_dataset(
    records, bounding_box_format, relative=False, num_parallel_calls=None, checked_images=True
):
    """Builds the unbatched data-contract dataset from parsed `Record`s.

    Args:
        records: list of `Record` (boxes ``xyxy``, absolute or relative).
        bounding_box_format: output box format.
        relative: the records' boxes are ``rel_xyxy``.
        num_parallel_calls: for the decoding ``map`` (default AUTOTUNE).
        checked_images: the image files were checked at load time; ``False``
            decodes through `decode_image`'s ``named_errors`` path so that a
            bad file fails naming it.

    Returns:
        ``tf.data.Dataset`` of ``{"images", "bounding_boxes": {"boxes",
        "labels"[, "difficult"][, "is_crowd"]}, "image_id", "file_name"}``.
    """
    fmt = box_ops.check_format(bounding_box_format)
    check_file_names(records)
    num_parallel_calls = num_parallel_calls or tf.data.AUTOTUNE
    counts = np.array([len(r.labels) for r in records], np.int64)
    splits = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    flat_boxes = np.concatenate([np.zeros((0, 4))] + [r.boxes for r in records])
    flat_boxes = flat_boxes.astype(np.float32).reshape(-1, 4)
    flat_labels = np.concatenate([np.zeros(0)] + [r.labels for r in records]).astype(np.int32)
    extras = {}
    for key in ("difficult", "is_crowd"):
        if records and any(getattr(r, key) is not None for r in records):
            extras[key] = np.concatenate(
                [
                    (
                        getattr(r, key)
                        if getattr(r, key) is not None
                        else np.zeros(len(r.labels), bool)
                    )
                    for r in records
                ]
            ).astype(bool)
    slices = {
        "file": np.array([r.file for r in records] or [""], dtype=str)[: len(records)],
        "image_id": np.array([r.image_id for r in records], np.int64),
        "file_name": np.array([r.file_name for r in records] or [""], dtype=str)[: len(records)],
        "hw": np.array([[r.height, r.width] for r in records], np.int32).reshape(-1, 2),
        "start": splits[:-1],
        "end": splits[1:],
    }
    with_masks = bool(records) and all(r.segmentation is not None for r in records)
    if with_masks:
        slices["segmentation"] = np.array([r.segmentation for r in records], dtype=object)
    boxes_t = tf.constant(flat_boxes)
    labels_t = tf.constant(flat_labels)
    extras_t = {k: tf.constant(v) for k, v in extras.items()}
    source = "rel_xyxy" if relative else "xyxy"

    def load_one(item):
        image = decode_image(item["file"], item["hw"], named_errors=not checked_images)
        boxes = boxes_t[item["start"] : item["end"]]
        if source == "xyxy":
            # Already clipped at load when the annotation declares the size;
            # this covers annotations without one (VOC <size> 0).
            hw = tf.cast(tf.shape(image)[:2], tf.float32)
            boxes = tf.minimum(tf.maximum(boxes, 0.0), tf.stack([hw[1], hw[0], hw[1], hw[0]]))
        if source != fmt:
            boxes = box_ops.convert_format(boxes, source, fmt, image_shape=tf.shape(image)[:2])
        bbox = {"boxes": boxes, "labels": labels_t[item["start"] : item["end"]]}
        for k, v in extras_t.items():
            bbox[k] = v[item["start"] : item["end"]]
        out = {
            "images": image,
            "bounding_boxes": bbox,
            "image_id": item["image_id"],
            "file_name": item["file_name"],
        }
        if with_masks:
            hw = tf.shape(image)[:2]
            masks = tf.numpy_function(
                rasterize_segmentations,
                [item["segmentation"], hw[0], hw[1]],
                tf.uint8,
                stateful=False,
            )
            masks.set_shape([None, None, None])
            out["masks"] = masks
        return out

    ds = tf.data.Dataset.from_tensor_slices(slices)
    return ds.map(load_one, num_parallel_calls=num_parallel_calls, deterministic=True)


def rle_string_to_counts(text):
    """Decodes COCO's compressed RLE string (``counts`` as ``str``) to a list of run lengths.

    Each count is stored in 5-bit groups (ASCII offset 48, bit 0x20 = more
    groups follow, bit 0x10 of the last group = sign); from the third count
    on, the value is a difference to the count two places back.
    """
    counts = []
    pos = 0
    while pos < len(text):
        value, shift, more = 0, 0, True
        while more:
            c = ord(text[pos]) - 48
            value |= (c & 0x1F) << (5 * shift)
            more = bool(c & 0x20)
            pos += 1
            shift += 1
            if not more and c & 0x10:
                value |= -1 << (5 * shift)
        if len(counts) > 2:
            value += counts[-2]
        counts.append(value)
    return counts


def rle_to_mask(counts, height, width):
    """Uncompressed COCO RLE (alternating 0 / 1 runs, column-major) → uint8 ``[H, W]``."""
    flat = np.zeros(height * width, np.uint8)
    pos = 0
    for k, run in enumerate(counts):
        if k % 2:
            flat[pos : pos + run] = 1
        pos += run
    return flat.reshape((height, width), order="F")


def polygons_to_mask(polygons, height, width):
    """Rasterizes COCO polygons (continuous pixel coordinates) → uint8 ``[H, W]``.

    A pixel is set when its centre ``(x + 0.5, y + 0.5)`` lies inside a
    polygon (even-odd rule per polygon, union over polygons): a scanline
    fill through the pixel centres, vectorized over rows.
    """
    mask = np.zeros((height, width), np.uint8)
    ys = np.arange(height, dtype=np.float64)[:, None] + 0.5  # [H, 1]
    for poly in polygons:
        pts = np.asarray(poly, np.float64).reshape(-1, 2)
        if len(pts) < 3:
            continue
        x0, y0 = pts[:, 0], pts[:, 1]
        x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
        crosses = (y0 <= ys) != (y1 <= ys)  # [H, E], half-open in y
        with np.errstate(divide="ignore", invalid="ignore"):
            xs = x0 + (ys - y0) * (x1 - x0) / (y1 - y0)
        xs = np.sort(np.where(crosses, xs, np.inf), axis=1)
        starts = np.ceil(xs[:, 0::2] - 0.5)
        ends = np.ceil(xs[:, 1::2] - 0.5) if xs.shape[1] > 1 else np.full_like(starts, np.inf)
        valid = np.isfinite(starts) & np.isfinite(ends)
        starts = np.clip(starts, 0, width).astype(np.int64)
        ends = np.clip(np.where(valid, ends, 0), 0, width).astype(np.int64)
        diff = np.zeros((height, width + 1), np.int32)
        rows = np.broadcast_to(np.arange(height)[:, None], starts.shape)
        np.add.at(diff, (rows[valid], starts[valid]), 1)
        np.add.at(diff, (rows[valid], ends[valid]), -1)
        mask |= (np.cumsum(diff, axis=1)[:, :width] > 0).astype(np.uint8)
    return mask


def rasterize_segmentations(segmentation_json, height, width):
    """NumPy side of the mask decoding: JSON list of segmentations → uint8 ``[N, H, W]``."""
    import json

    if isinstance(segmentation_json, bytes):
        segmentation_json = segmentation_json.decode()
    height, width = int(height), int(width)
    masks = []
    for seg in json.loads(segmentation_json):
        if "polygons" in seg:
            masks.append(polygons_to_mask(seg["polygons"], height, width))
        else:
            mask = rle_to_mask(seg["rle"], *seg["size"])
            if mask.shape != (height, width):
                import cv2

                mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST)
            masks.append(mask)
    if not masks:
        return np.zeros((0, height, width), np.uint8)
    return np.stack(masks)


def finish_records(records, stats, reader, split, skip_empty=False):
    """Applies ``skip_empty``, logs the stats; returns the records to use."""
    if skip_empty:
        kept = [r for r in records if len(r.labels)]
        stats.add("empty_images_skipped", "", len(records) - len(kept))
        records = kept
    stats.log(reader, split)
    return records
