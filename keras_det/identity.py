"""One image identity everywhere: ``file_name`` and ``image_id`` of image files.

A folder dataset names each image by its ``file_name``, the path relative to
the folder holding the split's images (``JPEGImages/``, a LabelImg image
folder, ``images/<split>/``, a COCO JSON's ``file_name``), and folder readers
give it ``image_id = file_image_id(file_name)``. ``keras-det predict`` and the
Beam pipelines name the files they read the same way, relative to the folder
or glob they were given (`input_root`), so predicting ``bccd/JPEGImages/``
yields the ids ``keras_det.data.load("bccd", ...)`` gives the same photos, and
a COCO results file joins its ground truth by ``image_id`` (or ``file_name``).

This module imports neither TensorFlow nor Beam: Beam workers use it.
"""

import glob
import hashlib
import os

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")

# Image ids must survive JSON (pycocotools, TF Serving clients in JavaScript):
# 53 bits is the largest integer a float64 holds exactly.
_ID_BITS = 53
_WILDCARDS = "*?["


def normalize_file_name(file_name):
    """``file_name`` as a ``/``-separated relative path (``./``, ``..`` and ``\\\\`` resolved)."""
    name = str(file_name).replace("\\", "/")
    if not name:
        return name
    return os.path.normpath(name).replace(os.sep, "/").lstrip("/")


def file_image_id(file_name):
    """The stable ``image_id`` of an image file in a folder dataset.

    The first 53 bits of the SHA-1 of the normalized ``file_name`` (UTF-8), so
    the same file has the same id whatever order a split lists it in and
    whichever tool read it; ``a.jpg`` and ``a.png`` differ. Ids are positive
    and fit a JSON number exactly.

    Args:
        file_name: str, relative path such as ``"BloodImage_00001.jpg"`` or
            ``"train/0001.png"``.

    Returns:
        int in ``[1, 2**53)``.
    """
    key = normalize_file_name(file_name).encode("utf-8", "surrogateescape")
    value = int.from_bytes(hashlib.sha1(key).digest()[:8], "big") >> (64 - _ID_BITS)
    return value or 1


def relative_file_name(path, root):
    """``path`` relative to the folder ``root``, ``/``-separated (the ``file_name``).

    Works on local paths and on URLs (``gs://bucket/images/a.jpg``); a path
    outside ``root`` keeps its base name.
    """
    path, root = str(path).replace("\\", "/"), str(root).replace("\\", "/").rstrip("/")
    if "://" not in path and "://" not in root:
        path, root = os.path.abspath(path), os.path.abspath(root) if root else os.getcwd()
        path, root = path.replace(os.sep, "/"), root.replace(os.sep, "/").rstrip("/")
    if root and path.startswith(root + "/"):
        return normalize_file_name(path[len(root) + 1:])
    return normalize_file_name(path.rsplit("/", 1)[-1])


def input_root(spec):
    """The folder an input spec's ``file_name``\\ s are relative to.

    A folder → itself; a glob → its directory part before the first wildcard
    (``photos/*/img_*.jpg`` → ``photos``); a file → its folder.
    """
    spec = str(spec)
    cut = min((spec.find(c) for c in _WILDCARDS if c in spec), default=-1)
    if cut >= 0:
        head = spec[:cut]  # "photos/img_" → "photos"; "photos/" → "photos/"; "" → ""
        return head.rsplit("/", 1)[0] + "/" if "/" in head else ""
    if "://" not in spec and os.path.isdir(spec):
        return spec
    return spec.rsplit("/", 1)[0] if "/" in spec else ""


def expand_inputs(inputs, extensions=IMAGE_EXTENSIONS):
    """Local image files of files, folders (recursive) and globs, with their ``file_name``.

    Args:
        inputs: list of str: image files, folders (every image below them,
            recursively) or globs.
        extensions: the image file endings a folder or glob takes.

    Returns:
        list of ``(path, file_name)`` in input order (each folder / glob
        sorted), ``file_name`` relative to the input's `input_root`.

    Raises:
        FileNotFoundError: an input that matches no image file, naming it.
        ValueError: two inputs give the same ``file_name`` (``a/x.jpg`` and
            ``b/x.jpg`` from folders ``a`` and ``b``), naming both files.
    """
    out, seen = [], {}
    for spec in inputs:
        spec = str(spec)
        root = input_root(spec)
        if os.path.isdir(spec):
            paths = sorted(
                os.path.join(d, f)
                for d, _, files in os.walk(spec)
                for f in files
                if f.lower().endswith(extensions)
            )
        elif any(c in spec for c in _WILDCARDS):
            paths = sorted(
                p for p in glob.glob(spec, recursive=True)
                if os.path.isfile(p) and p.lower().endswith(extensions)
            )
        elif os.path.isfile(spec):
            paths = [spec]
        else:
            raise FileNotFoundError(f"{spec}: no such file or folder.")
        if not paths:
            raise FileNotFoundError(
                f"{spec}: matches no image file ({', '.join(extensions)})."
            )
        for path in paths:
            name = relative_file_name(path, root)
            other = seen.get(name)
            if other is not None and os.path.abspath(other) != os.path.abspath(path):
                raise ValueError(
                    f"{other} and {path} would both be named {name!r} (and share an image id); "
                    "give their common parent folder instead, or run them separately."
                )
            if other is None:
                seen[name] = path
                out.append((path, name))
    return out
