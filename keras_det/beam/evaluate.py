"""Distributed COCO / VOC box evaluation as an Apache Beam pipeline.

``python -m keras_det.beam.evaluate --gt instances.json --detections 'out/detections-*.jsonl'
--output out/eval [--metric coco|voc] [Beam options]``

Steps (nothing runner-specific):

1. The ground-truth COCO JSON is read *on a worker* with
   `keras_det.metrics.coco.load_coco_ground_truth` and split per image
   (also images without annotations); its category ids become a side input.
2. Detections are read from COCO results JSON files (a JSON list, as
   pycocotools' ``loadRes`` takes) or JSON-lines files (one detection per
   line, as ``keras_det.beam.predict`` writes), any number of shards (a glob).
   Each detection keeps its position (file path, index) so that equal scores
   are broken in file order, as pycocotools does.
3. Both are keyed by image id — a detection with a ``file_name`` that the
   ground truth names takes that image's id — and joined (``CoGroupByKey``); batches of
   images are matched on the workers with `keras_det.metrics.coco.match_images`
   (COCO) or `keras_det.metrics.voc.voc_class_tp_fp` (VOC).
4. A ``beam.CombineFn`` (`COCOCombineFn` / `VOCCombineFn`) merges the
   picklable per-image records and, in ``extract_output``, runs the same
   `accumulate` + `summarize` as `keras_det.metrics.evaluate_coco`, so the
   numbers are those of pycocotools on the same files.

Detections that cannot be evaluated are never dropped silently: a malformed
entry (a missing field, a ``bbox`` that is not 4 finite numbers, a NaN /
infinite or boolean ``score``), a file that is not UTF-8 (one dead letter
for the file), an image id that is not an image of the ground truth, or a category id
that is not one of its categories becomes a dead letter
``{"image_id", "source", "stage": "evaluate", "reason", "detection"}``
(``dead_letter-SSSSS-of-NNNNN.jsonl``) and is counted (``detections_invalid``,
``detections_unknown_image``, ``detections_unknown_category``). pycocotools
(and `evaluate_coco`) refuse such files; the pipeline scores the rest. A
``--detections`` glob that matches nothing, or a missing ``--gt``, is an
`keras_det.beam.sources.InputError` before the run; a ground truth that is not a
COCO JSON fails the run with an error naming its path.

Output directory: ``metrics.json`` (the metric dict), ``summary.json``
(metrics, counts, seconds, counters) and the dead letters; a table is printed.
"""

import argparse
import json
import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from keras_det.beam import driver, sources

DEAD_LETTER_PREFIX = "dead_letter"
SUMMARY_NAME = "summary.json"
METRICS_NAME = "metrics.json"
STAGE = "evaluate"


# -- ground truth -----------------------------------------------------------------


def _py(value):
    """NumPy scalar → Python scalar (deterministic keys that equal JSON values)."""
    return value.item() if hasattr(value, "item") else value


class _ReadGroundTruth(beam.DoFn):
    """COCO GT JSON path → ``(image_id, gt arrays)`` per image; categories on a tagged output."""

    CATEGORIES = "categories"
    FILE_NAMES = "file_names"

    def __init__(self, iou_type="bbox"):
        self.iou_type = iou_type

    def process(self, path):
        import numpy as np

        from keras_det.metrics.coco import load_coco_ground_truth

        try:
            with FileSystems.open(path) as f:
                data = json.loads(f.read().decode("utf-8"))
            if not isinstance(data, dict) or not isinstance(data.get("images"), list):
                raise ValueError("expected a COCO object with an 'images' list")
            gt = load_coco_ground_truth(data, iou_type=self.iou_type)
        except Exception as error:  # the ground truth is not per-record: fail, naming the file
            raise sources.InputError(
                f"ground truth {path} is not a usable COCO JSON: {type(error).__name__}: {error}"
            ) from None
        difficult = np.zeros(len(gt["image_id"]), bool)
        if data.get("annotations"):
            # VOC "difficult" flags (COCO files converted from VOC carry them), aligned with
            # the annotations load_coco_ground_truth kept.
            anns = data["annotations"]
            images, cats = set(gt["image_ids"].tolist()), set(gt["category_ids"].tolist())
            flags = [bool(a.get("difficult", a.get("ignore", 0))) for a in anns if a["image_id"] in images and a["category_id"] in cats]
            difficult = np.asarray(flags, bool).reshape(-1)
        yield beam.pvalue.TaggedOutput(self.CATEGORIES, [_py(c) for c in gt["category_ids"]])
        yield beam.pvalue.TaggedOutput(self.FILE_NAMES, file_name_ids(data))
        order = np.argsort(np.searchsorted(gt["image_ids"], gt["image_id"]), kind="stable")
        keys = np.searchsorted(gt["image_ids"], gt["image_id"][order])
        starts = np.searchsorted(keys, np.arange(len(gt["image_ids"])), side="left")
        ends = np.searchsorted(keys, np.arange(len(gt["image_ids"])), side="right")
        for i, image_id in enumerate(gt["image_ids"]):
            sel = order[starts[i]:ends[i]]
            extra = {"height": int(gt["heights"][i]), "width": int(gt["widths"][i])}
            if self.iou_type == "segm":
                extra["masks"] = gt["segmentation"].take(sel)
            elif self.iou_type == "keypoints":
                extra.update(keypoints=gt["keypoints"][sel], ignore=gt["ignore"][sel])
            yield _py(image_id), {
                **extra,
                "category_id": gt["category_id"][sel],
                "bbox": gt["bbox"][sel],
                "area": gt["area"][sel],
                "iscrowd": gt["iscrowd"][sel],
                "id": gt["id"][sel] if len(gt["id"]) else np.ones(len(sel), np.int64),
                "difficult": difficult[sel],
            }


def file_name_ids(data):
    """``{file_name: image id}`` of a COCO GT dict's images (names used twice are left out)."""
    from keras_det.identity import normalize_file_name

    ids, twice = {}, set()
    for image in data.get("images") or ():
        name = image.get("file_name") if isinstance(image, dict) else None
        if not isinstance(name, str) or not name:
            continue
        name = normalize_file_name(name)
        if name in ids:
            twice.add(name)
        ids[name] = _py(image.get("id"))
    return {k: v for k, v in ids.items() if k not in twice}


def rekey_by_file_name(keyed, file_names):
    """``(image_id, (position, det))`` keyed by the GT id of ``det["file_name"]`` when the GT names that file.

    A detection that names its file joins the ground-truth image of that file
    (a COCO source keeps its own ids while ``keras-det predict`` numbers files
    by `file_image_id`); otherwise its ``image_id`` is used as written.
    """
    from keras_det.identity import normalize_file_name

    image_id, (position, det) = keyed
    name = det.get("file_name")
    if isinstance(name, str) and name:
        gt_id = file_names.get(normalize_file_name(name))
        if gt_id is not None and gt_id != image_id:
            det = {**det, "image_id": gt_id}
            image_id = gt_id
    return image_id, (position, det)


# -- detections -------------------------------------------------------------------


class _ReadDetections(beam.DoFn):
    """A matched results file → ``(image_id, (position, detection))``; bad entries → dead letters.

    A file whose first non-blank character is ``[`` is a COCO results JSON list;
    otherwise it is JSON lines (blank lines skipped).
    """

    def __init__(self, iou_type="bbox"):
        self.iou_type = iou_type
        self.read = Metrics.counter(sources.NAMESPACE, "detections_read")
        self.invalid = Metrics.counter(sources.NAMESPACE, "detections_invalid")

    def process(self, readable):
        from keras_det.metrics.coco_io import check_result

        path = readable.metadata.path
        try:
            text = readable.read().decode("utf-8")
        except UnicodeDecodeError as error:
            self.invalid.inc()
            reason = f"not UTF-8 text (byte {error.start}); the whole file is skipped"
            yield beam.pvalue.TaggedOutput(sources.DEAD_LETTER, sources.dead_letter({"source": path}, STAGE, reason))
            return
        stripped = text.lstrip()
        entries = []
        if stripped.startswith("["):
            try:
                data = json.loads(stripped)
            except ValueError as error:
                self.invalid.inc()
                yield beam.pvalue.TaggedOutput(sources.DEAD_LETTER, sources.dead_letter({"source": path}, STAGE, f"not valid JSON: {error}"))
                return
            entries = [(i, d, None) for i, d in enumerate(data)]
        else:
            for i, line in enumerate(text.splitlines()):
                if not line.strip():
                    continue
                try:
                    entries.append((i, json.loads(line), None))
                except ValueError as error:
                    entries.append((i, line, f"line {i + 1} is not valid JSON: {error}"))
        for i, det, reason in entries:
            reason = reason or check_result(det, self.iou_type)
            source = f"{path}:{i}"
            if reason:
                self.invalid.inc()
                record = {"image_id": det.get("image_id", "") if isinstance(det, dict) else "", "source": source}
                yield beam.pvalue.TaggedOutput(sources.DEAD_LETTER, {**sources.dead_letter(record, STAGE, reason), "detection": det})
                continue
            self.read.inc()
            yield det["image_id"], ((path, i), det)


# -- matching -----------------------------------------------------------------------


def _unknown(det, position, reason):
    record = {"image_id": det["image_id"], "source": f"{position[0]}:{position[1]}"}
    return beam.pvalue.TaggedOutput(sources.DEAD_LETTER, {**sources.dead_letter(record, STAGE, reason), "detection": det})


class _JoinImages(beam.DoFn):
    """Joined ``(image_id, {"gt": [...], "dt": [...]})`` → one image element, or dead letters."""

    def __init__(self, iou_type="bbox"):
        self.iou_type = iou_type
        self.invalid = Metrics.counter(sources.NAMESPACE, "detections_invalid")
        self.unknown_image = Metrics.counter(sources.NAMESPACE, "detections_unknown_image")
        self.unknown_category = Metrics.counter(sources.NAMESPACE, "detections_unknown_category")
        self.images = Metrics.counter(sources.NAMESPACE, "images_evaluated")
        self.detections = Metrics.counter(sources.NAMESPACE, "detections_evaluated")

    def process(self, joined, categories):
        image_id, groups = joined
        gts, dets = list(groups["gt"]), sorted(groups["dt"], key=lambda pd: pd[0])
        if not gts:
            self.unknown_image.inc(len(dets))
            for position, det in dets:
                yield _unknown(det, position, f"image_id {image_id!r} is not an image of the ground truth")
            return
        known = set(categories)
        kept = []
        for position, det in dets:
            if det["category_id"] not in known:
                self.unknown_category.inc()
                yield _unknown(det, position, f"category_id {det['category_id']!r} is not a category of the ground truth")
            else:
                kept.append((position, det))
        element = {"image_id": image_id, "gt": gts[0]}
        if self.iou_type != "bbox":
            kept, bad, element["dt_extra"] = _image_predictions(kept, gts[0], self.iou_type)
            for position, det, reason in bad:
                self.invalid.inc()
                yield _unknown(det, position, reason)
        self.images.inc()
        self.detections.inc(len(kept))
        yield {**element, "dt": [det for _, det in kept]}


def _image_predictions(kept, gt, iou_type):
    """segm / keypoints detections of one image → (usable, [(position, det, reason)], masks or keypoints).

    A segmentation that does not fit the image (an RLE of another size, a
    polygon of an image without a size) or keypoints of another count than the
    ground truth's are dead letters.
    """
    import numpy as np

    from keras_det.metrics import masks

    h, w = gt["height"], gt["width"]
    if iou_type == "keypoints":
        points = gt["keypoints"].shape[1] if len(gt["keypoints"]) else None
        good, bad = [], []
        for position, det in kept:
            n = len(det["keypoints"]) // 3
            if points is not None and n != points:
                bad.append((position, det, f"keypoints are {n} points, not {points} as the ground truth's"))
            else:
                points = n
                good.append((position, det))
        if not good:
            return good, bad, np.zeros((0, points or 0, 3))
        return good, bad, np.asarray([d["keypoints"] for _, d in good], np.float64).reshape(len(good), -1, 3)

    def one(det):
        seg = det["segmentation"]
        compressed = isinstance(seg, dict) and isinstance(seg.get("counts"), str)
        if h < 0 and not compressed:
            raise ValueError("a polygon or uncompressed RLE segmentation but the image has no height / width")
        ms = masks.masks_from_segmentations([seg], [h], [w], what="the detection's")
        if h >= 0 and (ms.heights[0] != h or ms.widths[0] != w):
            raise ValueError(f"segmentation of size {int(ms.heights[0])} x {int(ms.widths[0])} but the image is {h} x {w}")
        return ms

    good, bad, sets = [], [], []
    for position, det in kept:
        try:
            sets.append(one(det))
            good.append((position, det))
        except ValueError as error:
            bad.append((position, det, str(error)))
    return good, bad, masks.concat_mask_sets(sets)


def _det_arrays(dets):
    import numpy as np

    return (
        np.asarray([d["category_id"] for d in dets]),
        np.asarray([d.get("bbox", (0, 0, 0, 0)) for d in dets], np.float64).reshape(-1, 4),
        np.asarray([d["score"] for d in dets], np.float64),
    )


def match_coco(images, iou_type="bbox"):
    """A batch of joined images → one `MatchRecord` (`match_images` over the batch).

    segm / keypoints: a detection's area (for the area ranges) is its box area
    when it carries a ``bbox``, else its mask area / keypoint extent — per
    detection (pycocotools decides by the first entry of a file; the two agree
    when all or none of the results carry a box).
    """
    import numpy as np

    from keras_det.metrics.coco import match_images

    gi, gc, gb, ga, gcrowd, gid, di, dc, db, ds = ([] for _ in range(10))
    for image in images:
        gt, dets = image["gt"], image["dt"]
        gi.append(np.full(len(gt["category_id"]), image["image_id"], dtype=object))
        gc.append(gt["category_id"]), gb.append(gt["bbox"]), ga.append(gt["area"])
        gcrowd.append(gt["iscrowd"]), gid.append(gt["id"])
        cats, boxes, scores = _det_arrays(dets)
        di.append(np.full(len(dets), image["image_id"], dtype=object))
        dc.append(cats.astype(gt["category_id"].dtype) if len(dets) else np.zeros(0, gt["category_id"].dtype))
        db.append(boxes), ds.append(scores)
    cat = lambda parts: np.concatenate(parts) if parts else np.zeros(0)  # noqa: E731
    ids = np.asarray([image["image_id"] for image in images])
    # Object arrays of ids → the ids' own dtype (int or str) so the record sorts like pycocotools.
    as_ids = lambda parts: cat(parts).astype(ids.dtype)  # noqa: E731
    kwargs = {}
    if iou_type != "bbox":
        from keras_det.metrics import masks
        from keras_det.metrics.keypoints import keypoint_extent_areas

        has_box = np.asarray([("bbox" in d) for image in images for d in image["dt"]], bool)
        if iou_type == "segm":
            gm = masks.concat_mask_sets([image["gt"]["masks"] for image in images])
            dm = masks.concat_mask_sets([image["dt_extra"] for image in images])
            kwargs.update(gt_masks=gm, det_masks=dm)
            own = dm.areas.astype(np.float64)
        else:
            gk = [image["gt"]["keypoints"] for image in images]
            dk = [image["dt_extra"] for image in images]
            points = next((k.shape[1] for k in gk + dk if k.size), 0)
            gk = np.concatenate([np.zeros((0, points, 3))] + [k.reshape(len(k), points, 3) for k in gk if len(k)])
            dk = np.concatenate([np.zeros((0, points, 3))] + [k.reshape(len(k), points, 3) for k in dk if len(k)])
            kwargs.update(gt_keypoints=gk, det_keypoints=dk, gt_ignore=cat([image["gt"]["ignore"] for image in images]))
            own = keypoint_extent_areas(dk)
        boxes = cat(db).reshape(-1, 4)
        kwargs["det_areas"] = np.where(has_box, boxes[:, 2] * boxes[:, 3], own)
    return match_images(
        as_ids(gi), cat(gc), cat(gb).reshape(-1, 4), as_ids(di), cat(dc), cat(db).reshape(-1, 4), cat(ds),
        gt_areas=cat(ga), gt_iscrowd=cat(gcrowd), gt_ids=cat(gid), image_ids=ids, iou_type=iou_type, **kwargs,
    )


def match_voc(images, iou_threshold=0.5, pixel_offset=False):
    """A batch of joined images → list of per-(image, class) VOC records.

    Each record is ``(category_id, image_id, scores, tp, fp, npos)`` with
    flags in descending-score order within the image (the devkit's matching
    only looks at one image's ground truth).
    """
    import numpy as np

    from keras_det.metrics.voc import voc_class_tp_fp

    out = []
    for image in images:
        gt, dets = image["gt"], image["dt"]
        cats, boxes, scores = _det_arrays(dets)
        gxyxy = gt["bbox"].copy()
        gxyxy[:, 2:] += gxyxy[:, :2]
        dxyxy = boxes.copy()
        dxyxy[:, 2:] += dxyxy[:, :2]
        for c in sorted(set(gt["category_id"].tolist()) | set(cats.tolist())):
            gs, dsel = gt["category_id"] == c, cats == c
            n = int(dsel.sum())
            tp, fp, npos = voc_class_tp_fp(
                np.zeros(n), dxyxy[dsel], scores[dsel], np.zeros(int(gs.sum())), gxyxy[gs], gt["difficult"][gs],
                iou_threshold=iou_threshold, pixel_offset=pixel_offset,
            )
            order = np.argsort(-scores[dsel], kind="mergesort")
            out.append((_py(c), image["image_id"], scores[dsel][order], tp, fp, npos))
    return out


class _Match(beam.DoFn):
    def __init__(self, metric, iou_threshold, pixel_offset, iou_type="bbox"):
        self.metric = metric
        self.iou_type = iou_type
        self.iou_threshold = iou_threshold
        self.pixel_offset = pixel_offset

    def process(self, images):
        if self.metric == "coco":
            yield match_coco(images, self.iou_type)
        else:
            yield match_voc(images, self.iou_threshold, self.pixel_offset)


# -- combining ----------------------------------------------------------------------


class COCOCombineFn(beam.CombineFn):
    """Merges `MatchRecord` s; ``extract_output`` = `accumulate` + `summarize` (the 12 COCO stats).

    The accumulator is a list of records (merged into one by ``compact``);
    categories are those seen in the records, which gives the same stats as
    pycocotools' category list (categories without ground truth are ``-1``
    and left out of the means either way).
    """

    def create_accumulator(self):
        return []

    def add_input(self, accumulator, record):
        accumulator.append(record)
        return accumulator

    def merge_accumulators(self, accumulators):
        return [record for accumulator in accumulators for record in accumulator]

    def compact(self, accumulator):
        from keras_det.metrics.coco import merge_records

        return [merge_records(accumulator)] if len(accumulator) > 1 else accumulator

    def extract_output(self, accumulator):
        from keras_det.metrics.coco import accumulate, merge_records, per_category_ap, stats_to_dict, summarize

        record = merge_records(accumulator)
        acc = accumulate(record)
        return {
            "metric": "coco",
            "stats": stats_to_dict(summarize(acc)),
            "per_category_AP": {str(k): v for k, v in per_category_ap(acc).items()},
            "images": int(len(record.image_ids)),
            "detections": int(record.num_detections),
        }


class VOCCombineFn(beam.CombineFn):
    """Merges per-(image, class) VOC records; ``extract_output`` = AP per class and mAP.

    Detections of a class are ordered by descending score, then image id, then
    rank within the image (`VOCEvaluator` fed images in ascending id order),
    and the cumulated tp / fp go through `keras_det.metrics.voc.voc_ap`.
    """

    def __init__(self, use_07_metric=True):
        self.use_07_metric = use_07_metric

    def create_accumulator(self):
        return []

    def add_input(self, accumulator, records):
        accumulator.extend(records)
        return accumulator

    def merge_accumulators(self, accumulators):
        return [record for accumulator in accumulators for record in accumulator]

    def extract_output(self, accumulator):
        import numpy as np

        from keras_det.metrics.voc import _EPS, voc_ap

        by_class = {}
        for record in accumulator:
            by_class.setdefault(record[0], []).append(record)
        aps = {}
        images = set()
        n_det = 0
        for c, records in sorted(by_class.items(), key=lambda kv: str(kv[0])):
            records = sorted(records, key=lambda r: r[1])
            images.update(r[1] for r in records)
            npos = sum(r[5] for r in records)
            scores = np.concatenate([r[2] for r in records])
            tp = np.concatenate([r[3] for r in records])
            fp = np.concatenate([r[4] for r in records])
            image_rank = np.concatenate([np.full(len(r[2]), i) for i, r in enumerate(records)])
            rank = np.concatenate([np.arange(len(r[2])) for r in records])
            n_det += len(scores)
            if npos == 0:
                continue
            order = np.lexsort((rank, image_rank, -scores))
            tp, fp = np.cumsum(tp[order]), np.cumsum(fp[order])
            rec = tp / float(npos)
            prec = tp / np.maximum(tp + fp, _EPS)
            aps[str(c)] = voc_ap(rec, prec, self.use_07_metric)
        return {
            "metric": "voc",
            "stats": {"mAP": float(np.mean(list(aps.values()))) if aps else 0.0},
            "per_category_AP": aps,
            "images": len(images),
            "detections": int(n_det),
        }


# -- pipeline -----------------------------------------------------------------------


def build(pipeline, args):
    """Adds the evaluation to ``pipeline``; returns the metrics PCollection (one dict)."""
    out = args.output.rstrip("/")
    gt = (
        pipeline
        | "GTPath" >> beam.Create([args.gt])
        | "ReadGT" >> beam.ParDo(_ReadGroundTruth(args.iou_type)).with_outputs(
            _ReadGroundTruth.CATEGORIES, _ReadGroundTruth.FILE_NAMES, main="images"
        )
    )
    dets = (
        pipeline
        | "MatchDetections" >> fileio.MatchFiles(args.detections)
        | "ReadMatches" >> fileio.ReadMatches()
        | "ReadDetections" >> beam.ParDo(_ReadDetections(args.iou_type)).with_outputs(sources.DEAD_LETTER, main="detections")
    )
    keyed = dets.detections | "KeyByFileName" >> beam.Map(
        rekey_by_file_name, beam.pvalue.AsSingleton(gt[_ReadGroundTruth.FILE_NAMES])
    )
    joined = (
        {"gt": gt.images, "dt": keyed}
        | "JoinByImage" >> beam.CoGroupByKey()
        | "Join" >> beam.ParDo(_JoinImages(args.iou_type), beam.pvalue.AsSingleton(gt[_ReadGroundTruth.CATEGORIES])).with_outputs(
            sources.DEAD_LETTER, main="images"
        )
    )
    records = (
        joined.images
        | "Batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=args.images_per_batch)
        | "Match" >> beam.ParDo(_Match(args.metric, args.iou_threshold, args.pixel_offset, args.iou_type))
    )
    combine = COCOCombineFn() if args.metric == "coco" else VOCCombineFn(not args.voc_area)
    metrics = records | "Combine" >> beam.CombineGlobally(combine)
    dead = (dets[sources.DEAD_LETTER], joined[sources.DEAD_LETTER]) | "AllDeadLetters" >> beam.Flatten()
    dead | "WriteDeadLetters" >> sources.WriteDeadLetters(FileSystems.join(out, DEAD_LETTER_PREFIX))
    n_dead = dead | "CountDead" >> beam.combiners.Count.Globally()
    (
        metrics
        | "WithDead" >> beam.Map(lambda m, n: json.dumps({**m, "dead_letters": int(n)}), beam.pvalue.AsSingleton(n_dead))
        | "WriteMetrics" >> beam.io.WriteToText(FileSystems.join(out, "metrics"), file_name_suffix=".json", num_shards=1, shard_name_template="")
    )
    return metrics


def format_table(metrics):
    """The metric dict as a printable table (the 12 COCO numbers, or VOC mAP + per class)."""
    lines = [f"{'metric':<10} {'value':>8}"]
    for name, value in metrics["stats"].items():
        lines.append(f"{name:<10} {value:8.4f}")
    if metrics["metric"] == "voc":
        for name, value in metrics["per_category_AP"].items():
            lines.append(f"AP[{name}]".ljust(10) + f" {value:8.4f}")
    lines.append(f"images {metrics['images']}, detections {metrics['detections']}, dead letters {metrics.get('dead_letters', 0)}")
    return "\n".join(lines)


def parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--gt",
        required=True,
        help="COCO ground-truth JSON (local, gs://, ...), or any keras_det.data.load source (a VOC / "
        "LabelImg / YOLO folder, a TFDS name such as voc/2007) with --gt_split",
    )
    p.add_argument("--gt_split", default="test", help="split of a non-JSON --gt source")
    p.add_argument("--detections", required=True, help="glob of COCO results JSON lists or JSON-lines shards")
    p.add_argument("--output", required=True, help="output directory")
    p.add_argument("--metric", default="coco", choices=("coco", "voc"))
    p.add_argument("--iou_type", default="bbox", choices=("bbox", "segm", "keypoints"),
                   help="COCO only: box IoU, mask IoU of the detections' 'segmentation', or keypoint OKS")
    p.add_argument("--iou_threshold", type=float, default=0.5, help="VOC only")
    p.add_argument("--voc_area", action="store_true", help="VOC all-point (area) AP instead of the 2007 11-point AP")
    p.add_argument("--pixel_offset", action="store_true", help="VOC devkit +1 pixel widths")
    p.add_argument("--images_per_batch", type=int, default=64, help="images matched per worker call (at most)")
    return p


def ground_truth_json(source, split, out):
    """A COCO JSON of a non-JSON ground-truth source, written to ``out/ground_truth.json``.

    Built on the driver with ``keras_det.data.load`` + ``to_coco`` (category
    ids ``label + 1``, the exported models' ``detection_classes``; image ids
    and ``file_name``\ s as ``load`` gives them, which ``keras_det.beam.predict``
    gives the same files).
    """
    from keras_det import data

    try:
        dataset, info = data.load(source, split, bounding_box_format="xywh", with_info=True)
    except data.DataError as error:
        raise sources.InputError(f"--gt {source!r}: {error}") from None
    path = FileSystems.join(out, "ground_truth.json")
    driver.write_text(path, json.dumps(data.to_coco(dataset, info)))
    return path


def run(argv=None):
    """Runs the pipeline; returns the summary dict (also written to ``summary.json``)."""
    args, beam_args = parser().parse_known_args(argv)
    out = args.output.rstrip("/")
    sources.require_matches(args.detections, "--detections")
    if args.iou_type != "bbox" and (args.metric != "coco" or not args.gt.lower().endswith(".json")):
        raise sources.InputError(f"--iou_type {args.iou_type} needs --metric coco and a COCO JSON --gt.")
    if args.gt.lower().endswith(".json") and not FileSystems.exists(args.gt):
        raise sources.InputError(f"--gt {args.gt!r} does not exist.")
    if not args.gt.lower().endswith(".json"):
        args.gt = ground_truth_json(args.gt, args.gt_split, out)
    result, seconds = driver.execute(build, args, beam_args)
    metrics = json.loads(driver.read_text_lines(FileSystems.join(out, METRICS_NAME))[0])
    summary = {**metrics, "gt": args.gt, "detections_input": args.detections}
    return driver.finish_summary(out, "evaluate", summary, result, seconds, SUMMARY_NAME)


def main(argv=None):
    driver.main(run, argv, render=format_table)


if __name__ == "__main__":
    main()
