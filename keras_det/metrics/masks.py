"""COCO masks in vectorised NumPy: RLE strings, polygons, runs and mask IoU.

A COCO mask of an ``h x w`` image is a run-length encoding of its pixels in
column-major order (flat index ``x * h + y``): alternating background /
foreground run lengths, starting with background. Files carry it as

* compressed RLE ``{"size": [h, w], "counts": "<string>"}`` (each count a
  variable-length group of 5-bit chunks, 6 bits a character offset by 48,
  bit ``0x20`` = more chunks follow, bit ``0x10`` of the last chunk the sign;
  from the fourth count on the difference to the count two places before),
* uncompressed RLE ``{"size": [h, w], "counts": [int, ...]}`` (crowds),
* polygons ``[[x1, y1, x2, y2, ...], ...]`` (the union of the parts).

Everything here follows pycocotools' ``mask`` semantics so that evaluation is
identical to ``COCOeval(..., "segm")``; pycocotools is not imported:

* Polygons are rasterised pycocotools' way: vertices scaled by 5 and
  rounded (``int(5 * v + 0.5)``), the closed boundary traced one upsampled
  step at a time along its major axis (rounding the minor coordinate), and a
  pixel column ``x`` gets a boundary crossing wherever the upsampled trace
  crosses its centre; the crossing's row is the upper of the two trace points,
  mapped back and rounded up (``ceil((v + 0.5) / 5 - 0.5)``, clamped to
  ``[0, h]``). Pixels are inside between alternate crossings of a column
  (crossings at the same place cancel).
* Mask IoU is ``intersection / union`` of pixel counts, and
  ``intersection / detection area`` for a crowd ground truth; 0 without
  intersection; ``-1`` for masks of different sizes (never a match).

Masks are held as a `MaskSet`: the foreground runs of many masks laid end to
end in one flat axis (mask ``m`` at offset ``offsets[m]``), so that areas,
boxes and pairwise intersections are a few sorted-array operations.
"""

import dataclasses

import numpy as np

_SCALE = 5.0


# ----------------------------------------------------------------------------- RLE strings


def decode_rle_counts(counts):
    """A compressed COCO RLE string → its run lengths.

    Args:
        counts: ``str`` or ``bytes`` (``"counts"`` of a compressed RLE).

    Returns:
        int64 ``[n]`` run lengths (background first).

    Raises:
        ValueError: a character outside the alphabet, or an unfinished count.
    """
    return decode_rle_counts_many([counts])[0]


def decode_rle_counts_many(strings):
    """Many compressed RLE strings at once → ``(run lengths concatenated, count per string)``.

    Vectorised over all strings (no per-string loop). Returns int64 ``[n]``
    and int64 ``[len(strings)]``; `decode_rle_counts` is the one-string form.

    Raises:
        ValueError: ``"string i: ..."`` for a character outside the alphabet or
            an unfinished count.
    """
    data = [x.encode("ascii") if isinstance(x, str) else bytes(x) for x in strings]
    n_bytes = np.array([len(x) for x in data], np.int64)
    raw = np.frombuffer(b"".join(data), np.uint8).astype(np.int64)
    owner_b = np.repeat(np.arange(len(data)), n_bytes)
    chunk = raw - 48
    bad = (chunk < 0) | (chunk > 63)
    if bad.any():
        raise ValueError(f"string {int(owner_b[np.argmax(bad)])}: an RLE counts string has a character "
                         "outside '0'..'o'")
    last = (chunk & 0x20) == 0
    string_end = np.cumsum(n_bytes)[n_bytes > 0] - 1
    if not last[string_end].all():
        i = int(owner_b[string_end[np.argmax(~last[string_end])]])
        raise ValueError(f"string {i}: an RLE counts string ends inside a count")
    group = np.cumsum(last) - last  # value index of each byte
    starts = np.flatnonzero(np.r_[True, last[:-1]]) if raw.size else np.zeros(0, np.int64)
    k = np.arange(raw.size) - starts[group] if raw.size else np.zeros(0, np.int64)
    n_val = int(last.sum())
    values = np.bincount(group, weights=(chunk & 0x1F) << (5 * k), minlength=n_val).astype(np.int64)
    ends = np.flatnonzero(last)
    negative = (chunk[ends] & 0x10) != 0
    values[negative] -= np.left_shift(np.int64(1), 5 * (k[ends[negative]] + 1))
    owner = owner_b[ends]
    n_counts = np.bincount(owner, minlength=len(data)).astype(np.int64)
    first = np.cumsum(n_counts) - n_counts
    i = np.arange(n_val) - first[owner]
    # From the fourth count on, a count is stored as the difference to the one two places before:
    # count[i] = base + the differences of its parity from index 3 on (base = count[1] or count[2]).
    out = values.copy()
    late = np.flatnonzero(i >= 3)
    if late.size:
        cls = owner[late] * 2 + (i[late] % 2)  # late indices are sorted by owner then index
        order = np.lexsort((i[late], cls))
        idx = late[order]
        c = np.cumsum(values[idx])
        seg_start = np.r_[True, cls[order][1:] != cls[order][:-1]]
        before = np.maximum.accumulate(np.where(seg_start, np.arange(idx.size), 0))
        c = c - np.r_[0, c][before]
        base = values[first[owner[idx]] + np.where(i[idx] % 2 == 1, 1, 2)]
        out[idx] = c + base
    return out, n_counts


def encode_rle_counts(counts):
    """Run lengths → the compressed COCO RLE string (inverse of `decode_rle_counts`).

    Args:
        counts: int ``[n]`` run lengths (background first).

    Returns:
        ``str``.
    """
    c = np.asarray(counts, np.int64).reshape(-1)
    if c.size == 0:
        return ""
    x = c.copy()
    x[3:] = c[3:] - c[1:-2]
    chars, active = [], np.ones(x.shape, bool)
    for _ in range(13):  # 13 chunks of 5 bits cover int64
        part = x & 0x1F
        x = x >> 5
        more = np.where((part & 0x10) != 0, x != -1, x != 0)
        chars.append(np.where(active, (part | np.where(more, 0x20, 0)) + 48, -1))
        active = active & more
        if not active.any():
            break
    table = np.stack(chars, axis=1).reshape(-1)
    return table[table >= 0].astype(np.uint8).tobytes().decode("ascii")


# ----------------------------------------------------------------------------- mask sets


@dataclasses.dataclass
class MaskSet:
    """Foreground runs of ``K`` masks on one flat axis.

    Attributes:
        heights, widths: int64 ``[K]`` mask sizes.
        offsets: int64 ``[K]`` start of each mask on the flat axis
            (``cumsum`` of ``h * w``).
        starts, ends: int64 ``[R]`` foreground runs ``[start, end)`` in flat
            axis positions (column-major inside a mask), sorted, disjoint.
        run_ptr: int64 ``[K + 1]``: the runs of mask ``m`` are
            ``run_ptr[m]:run_ptr[m + 1]``.
    """

    heights: np.ndarray
    widths: np.ndarray
    offsets: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    run_ptr: np.ndarray

    def __len__(self):
        return int(self.heights.shape[0])

    @property
    def areas(self):
        """int64 ``[K]`` foreground pixel counts."""
        return _per_mask_sum(self.ends - self.starts, self.run_ptr)

    def take(self, index):
        """The masks ``index`` (int ``[n]``) as a new `MaskSet`."""
        index = np.asarray(index, np.int64).reshape(-1)
        h, w = self.heights[index], self.widths[index]
        offsets = _offsets(h, w)
        n_runs = self.run_ptr[index + 1] - self.run_ptr[index]
        runs, owner = _ranges(self.run_ptr[index], n_runs)
        shift = (offsets - self.offsets[index])[owner]
        return MaskSet(h, w, offsets, self.starts[runs] + shift, self.ends[runs] + shift,
                       np.r_[0, np.cumsum(n_runs)].astype(np.int64))

    def boxes(self):
        """Inclusive pixel boxes ``[K, 4]`` ``(x0, y0, x1, y1)``; ``(0, 0, -1, -1)`` for empty masks."""
        k = len(self)
        out = np.tile(np.array([0, 0, -1, -1], np.int64), (k, 1))
        if not self.starts.size:
            return out
        owner = np.repeat(np.arange(k), np.diff(self.run_ptr))
        h = self.heights[owner]
        s, e = self.starts - self.offsets[owner], self.ends - self.offsets[owner] - 1
        xs, xe = s // h, e // h
        one_column = xs == xe
        ys = np.where(one_column, s % h, 0)
        ye = np.where(one_column, e % h, h - 1)
        has = np.diff(self.run_ptr) > 0
        big = np.iinfo(np.int64).max
        for col, values, fn, init in ((0, xs, np.minimum, big), (1, ys, np.minimum, big),
                                      (2, xe, np.maximum, -1), (3, ye, np.maximum, -1)):
            acc = np.full((k,), init, np.int64)
            fn.at(acc, owner, values)
            out[has, col] = acc[has]
        return out

    def to_rle_counts(self, index):
        """Run lengths of mask ``index`` (background first), as COCO RLE stores them."""
        a, b = self.run_ptr[index], self.run_ptr[index + 1]
        off, n = self.offsets[index], self.heights[index] * self.widths[index]
        s, e = self.starts[a:b] - off, self.ends[a:b] - off
        edges = np.stack([s, e], axis=1).reshape(-1)
        counts = np.diff(np.r_[0, edges, n]).astype(np.int64)
        # A mask ending in foreground has no closing background run.
        return counts[:-1] if counts.shape[0] > 1 and counts[-1] == 0 else counts

    def to_dense(self):
        """uint8 ``[K, H, W]`` (all masks must have one size)."""
        if len(self) == 0:
            return np.zeros((0, 0, 0), np.uint8)
        h, w = int(self.heights[0]), int(self.widths[0])
        if np.any(self.heights != h) or np.any(self.widths != w):
            raise ValueError("to_dense needs masks of one size.")
        flat = np.zeros((len(self) * h * w + 1,), np.int64)
        np.add.at(flat, self.starts, 1)
        np.add.at(flat, self.ends, -1)
        dense = np.cumsum(flat[:-1]).astype(np.uint8).reshape(len(self), w, h)
        return np.ascontiguousarray(dense.transpose(0, 2, 1))


def _offsets(heights, widths):
    sizes = np.asarray(heights, np.int64) * np.asarray(widths, np.int64)
    return np.r_[0, np.cumsum(sizes)[:-1]].astype(np.int64) if sizes.size else np.zeros((0,), np.int64)


def _ranges(starts, counts):
    """Concatenated ``arange(starts[i], starts[i] + counts[i])`` and the owner ``i`` of each."""
    counts = np.asarray(counts, np.int64)
    owner = np.repeat(np.arange(counts.shape[0]), counts)
    first = np.cumsum(counts) - counts
    return np.asarray(starts, np.int64)[owner] + np.arange(owner.shape[0]) - first[owner], owner


def _per_mask_sum(values, ptr):
    owner = np.repeat(np.arange(ptr.shape[0] - 1), np.diff(ptr))
    return np.bincount(owner, weights=values, minlength=ptr.shape[0] - 1).astype(np.int64)


def empty_mask_set():
    z = np.zeros((0,), np.int64)
    return MaskSet(z, z, z, z, z, np.zeros((1,), np.int64))


def concat_mask_sets(sets):
    """One `MaskSet` of the masks of ``sets`` in order."""
    sets = [s for s in sets if len(s)]
    if not sets:
        return empty_mask_set()
    h = np.concatenate([s.heights for s in sets])
    w = np.concatenate([s.widths for s in sets])
    offsets = _offsets(h, w)
    starts, ends, n_runs, k = [], [], [], 0
    for s in sets:
        shift = np.repeat(offsets[k:k + len(s)] - s.offsets, np.diff(s.run_ptr))
        starts.append(s.starts + shift)
        ends.append(s.ends + shift)
        n_runs.append(np.diff(s.run_ptr))
        k += len(s)
    return MaskSet(h, w, offsets, np.concatenate(starts), np.concatenate(ends),
                   np.r_[0, np.cumsum(np.concatenate(n_runs))].astype(np.int64))


def masks_from_dense(masks):
    """``[K, H, W]`` binary masks (any dtype, non-zero = foreground) → `MaskSet`."""
    m = np.asarray(masks)
    if m.ndim != 3:
        raise ValueError(f"masks must be [K, H, W], got shape {m.shape}.")
    k, h, w = m.shape
    flat = (m != 0).transpose(0, 2, 1).reshape(k, h * w).astype(np.int8)
    d = np.diff(np.pad(flat, ((0, 0), (1, 1))), axis=1)
    ms, ps = np.nonzero(d > 0)
    _, pe = np.nonzero(d < 0)
    offsets = _offsets(np.full(k, h), np.full(k, w))
    n_runs = np.bincount(ms, minlength=k)
    return MaskSet(np.full(k, h, np.int64), np.full(k, w, np.int64), offsets,
                   ps.astype(np.int64) + offsets[ms], pe.astype(np.int64) + offsets[ms],
                   np.r_[0, np.cumsum(n_runs)].astype(np.int64))


def masks_from_counts(counts_list, heights, widths, flat=None):
    """Run-length lists (background first, one per mask) → `MaskSet`.

    Args:
        counts_list: list of int run-length lists (ignored when ``flat`` is given).
        heights, widths: int ``[K]`` mask sizes.
        flat: optional ``(counts concatenated, count per mask)`` instead
            (what `decode_rle_counts_many` returns).

    Raises:
        ValueError: a count list whose sum is not ``h * w``, or a negative count.
    """
    heights = np.asarray(heights, np.int64).reshape(-1)
    widths = np.asarray(widths, np.int64).reshape(-1)
    k = heights.shape[0]
    if k == 0:
        return empty_mask_set()
    if flat is not None:
        c, lens = flat
    else:
        lens = np.array([len(x) for x in counts_list], np.int64)
        c = (np.concatenate([np.asarray(x, np.int64).reshape(-1) for x in counts_list]) if lens.sum()
             else np.zeros(0, np.int64))
    owner = np.repeat(np.arange(k), lens)
    if c.size and c.min() < 0:
        raise ValueError(f"mask {int(owner[np.argmax(c < 0)])} has a negative RLE count")
    totals = np.bincount(owner, weights=c, minlength=k)
    bad = totals != heights * widths
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"mask {i}: the RLE counts sum to {int(totals[i])}, not h * w = {int(heights[i] * widths[i])}")
    offsets = _offsets(heights, widths)
    first = np.cumsum(lens) - lens
    run = np.arange(c.shape[0]) - first[owner]
    cs = np.cumsum(c)
    base = np.where(first > 0, cs[np.maximum(first - 1, 0)] if cs.size else 0, 0)
    end = cs - base[owner] + offsets[owner]  # end of each run on the flat axis
    keep = (run % 2 == 1) & (c > 0)
    return MaskSet(heights, widths, offsets, (end - c)[keep], end[keep],
                   np.r_[0, np.cumsum(np.bincount(owner[keep], minlength=k))].astype(np.int64))


# ----------------------------------------------------------------------------- polygons


def _polygon_toggles(parts, heights, widths, offsets):
    """Boundary crossings of polygon parts (see module docstring), on the flat axis.

    Args:
        parts: list of float64 ``[2 n]`` vertex lists.
        heights, widths, offsets: int64 per part (the mask it belongs to).

    Returns:
        ``(part, position)`` int64 arrays of every crossing.
    """
    n_vert = np.array([p.shape[0] // 2 for p in parts], np.int64)
    xy = np.concatenate(parts).reshape(-1, 2)
    pid = np.repeat(np.arange(len(parts)), n_vert)
    # C-style int(): truncation toward zero.
    q = np.trunc(_SCALE * xy + 0.5).astype(np.int64)
    first = np.cumsum(n_vert) - n_vert
    nxt = np.arange(q.shape[0]) + 1
    nxt[first + n_vert - 1] = first  # the closing edge
    xs, ys = q[:, 0], q[:, 1]
    xe, ye = xs[nxt], ys[nxt]
    dx, dy = np.abs(xe - xs), np.abs(ye - ys)
    xmajor = dx >= dy
    flip = (xmajor & (xs > xe)) | (~xmajor & (ys > ye))
    ax, ay = np.where(flip, xe, xs), np.where(flip, ye, ys)
    bx, by = np.where(flip, xs, xe), np.where(flip, ys, ye)
    steps = np.where(xmajor, dx, dy)
    span = np.where(xmajor, by - ay, bx - ax).astype(np.float64)
    slope = np.divide(span, steps, out=np.zeros_like(span), where=steps > 0)
    # The trace of an edge at step t (from its start (ax, ay)): along x, (ax + t, int(ay + slope t + .5));
    # along y, (int(ax + slope t + .5), ay + t). Only consecutive points (t, t + 1) whose column u
    # changes give crossings, at column min(u) and row min(v); a column is a pixel centre only
    # when min(u) = 2 (mod 5) ((u + .5) / 5 - .5 is then an integer).
    # x-major edges: u changes at every step, so take only the steps with ax + t = 2 (mod 5).
    ex = np.flatnonzero(xmajor & (steps > 0))
    t0 = (2 - ax[ex]) % 5
    count = np.where(t0 <= steps[ex] - 1, (steps[ex] - 1 - t0) // 5 + 1, 0)
    m, owner = _ranges(np.zeros_like(count), count)
    e = ex[owner]
    t = t0[owner] + 5 * m
    xd_x = ax[e] + t
    v1 = np.trunc(ay[e] + slope[e] * t + 0.5)
    v2 = np.trunc(ay[e] + slope[e] * (t + 1) + 0.5)
    yd_x = np.minimum(v1, v2).astype(np.int64)
    part_x = pid[e]
    # y-major edges: the column changes at some steps; trace every point of these edges.
    ey = np.flatnonzero(~xmajor)
    idx, owner = _ranges(np.zeros_like(steps[ey]), steps[ey])
    e = ey[owner]
    u1 = np.trunc(ax[e] + slope[e] * idx + 0.5)
    u2 = np.trunc(ax[e] + slope[e] * (idx + 1) + 0.5)
    change = u1 != u2
    xd_y = np.minimum(u1, u2)[change].astype(np.int64)
    yd_y = (ay[e] + idx)[change]
    part_y = pid[e][change]
    xd = np.r_[xd_x, xd_y]
    yd = np.r_[yd_x, yd_y]
    part = np.r_[part_x, part_y]
    col = (xd.astype(np.float64) + 0.5) / _SCALE - 0.5
    h, w = heights[part], widths[part]
    ok = (np.floor(col) == col) & (col >= 0) & (col <= w - 1)
    row = (yd.astype(np.float64) + 0.5) / _SCALE - 0.5
    row = np.ceil(np.clip(row, 0, h.astype(np.float64)))
    pos = col.astype(np.int64) * h + row.astype(np.int64)
    return part[ok], pos[ok] + offsets[part[ok]]


def _runs_from_toggles(owner, pos, ends_of_owner):
    """Sorted crossing positions per owner → foreground runs (equal crossings cancel in pairs)."""
    order = np.lexsort((pos, owner))
    owner, pos = owner[order], pos[order]
    if owner.size:
        new = np.r_[True, (owner[1:] != owner[:-1]) | (pos[1:] != pos[:-1])]
        starts = np.flatnonzero(new)
        mult = np.diff(np.r_[starts, owner.size])
        keep = starts[mult % 2 == 1]
        owner, pos = owner[keep], pos[keep]
        inside = pos < ends_of_owner[owner]
        owner, pos = owner[inside], pos[inside]
    # Pair crossings within each owner; an odd one runs to the end of the mask.
    n = np.bincount(owner, minlength=ends_of_owner.shape[0])
    odd = np.flatnonzero(n % 2 == 1)
    owner = np.r_[owner, odd]
    pos = np.r_[pos, ends_of_owner[odd]]
    order = np.lexsort((pos, owner))
    owner, pos = owner[order], pos[order]
    return owner[0::2], pos[0::2], pos[1::2]


def _union_runs(owner, starts, ends, n_owner):
    """Union of runs per owner (runs of different parts may overlap) → sorted disjoint runs."""
    n = owner.shape[0]
    ev_pos = np.r_[starts, ends]
    ev_owner = np.r_[owner, owner]
    ev_delta = np.r_[np.ones(n, np.int64), -np.ones(n, np.int64)]
    # Starts before ends at one position, so touching runs merge.
    order = np.lexsort((-ev_delta, ev_pos, ev_owner))
    ev_pos, ev_owner, ev_delta = ev_pos[order], ev_owner[order], ev_delta[order]
    cover = np.cumsum(ev_delta)
    opening = (ev_delta > 0) & (cover == 1)
    closing = (ev_delta < 0) & (cover == 0)
    o = ev_owner[opening]
    return o, ev_pos[opening], ev_pos[closing], np.r_[0, np.cumsum(np.bincount(o, minlength=n_owner))]


def masks_from_polygons(polygons, heights, widths):
    """COCO polygon segmentations (one list of parts per mask) → `MaskSet` (union of parts).

    Args:
        polygons: list (one per mask) of lists of ``[x1, y1, x2, y2, ...]``
            parts, absolute pixels.
        heights, widths: the image size of each mask.
    """
    heights = np.asarray(heights, np.int64).reshape(-1)
    widths = np.asarray(widths, np.int64).reshape(-1)
    k = heights.shape[0]
    offsets = _offsets(heights, widths)
    parts, part_mask = [], []
    for m, poly in enumerate(polygons):
        for p in poly:
            p = np.asarray(p, np.float64).reshape(-1)
            if p.shape[0] >= 2:
                parts.append(p[: p.shape[0] // 2 * 2])
                part_mask.append(m)
    if not parts:
        return MaskSet(heights, widths, offsets, np.zeros(0, np.int64), np.zeros(0, np.int64),
                       np.zeros(k + 1, np.int64))
    part_mask = np.asarray(part_mask, np.int64)
    ph, pw, po = heights[part_mask], widths[part_mask], offsets[part_mask]
    t_part, t_pos = _polygon_toggles(parts, ph, pw, po)
    r_part, r_s, r_e = _runs_from_toggles(t_part, t_pos, po + ph * pw)
    owner, s, e, ptr = _union_runs(part_mask[r_part], r_s, r_e, k)
    return MaskSet(heights, widths, offsets, s, e, ptr.astype(np.int64))


# ----------------------------------------------------------------------------- COCO objects


def segmentation_reason(seg):
    """``None`` if ``seg`` is a COCO segmentation (RLE or polygons), else why not (reads after "that")."""
    if isinstance(seg, dict):
        size, counts = seg.get("size"), seg.get("counts")
        if not (isinstance(size, (list, tuple)) and len(size) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in size)):
            return f"is an RLE without a 'size' [h, w] of two non-negative integers: {seg!r:.80}"
        if isinstance(counts, (str, bytes)):
            return None
        if isinstance(counts, list) and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts):
            return None
        return f"is an RLE whose 'counts' is neither a string nor a list of non-negative integers: {seg!r:.80}"
    if isinstance(seg, list):
        ok = all(isinstance(part, (list, tuple)) and len(part) >= 4 for part in seg)
        if ok:
            types = {type(v) for part in seg for v in part}
            ok = all(issubclass(t, (int, float, np.integer, np.floating)) and not issubclass(t, (bool, np.bool_))
                     for t in types)
            ok = ok and all(np.isfinite(np.asarray(part, np.float64)).all() for part in seg)
        if not ok:
            return f"is not a list of polygons (each at least 2 points of finite numbers): {seg!r:.80}"
        return None
    return f"is neither an RLE {{'size', 'counts'}} nor a list of polygons: {seg!r:.80}"


def masks_from_segmentations(segmentations, heights, widths, what="segmentation", labels=None):
    """COCO ``segmentation`` fields → `MaskSet` (the image sizes decide for polygons and uncompressed RLE).

    Compressed RLE keeps its own ``size`` (pycocotools does); an uncompressed
    RLE or a polygon takes the image's ``heights[i] x widths[i]``.

    Args:
        segmentations: list of COCO ``segmentation`` values.
        heights, widths: int ``[K]`` the image size of each.
        what: how errors name an entry (``"<path>: annotation entry"``).
        labels: the index errors report for each entry (default its position).

    Raises:
        ValueError: naming ``what`` and the index, for a malformed entry.
    """
    import re

    label = (lambda i: i) if labels is None else (lambda i: labels[i])  # noqa: E731
    heights = np.asarray(heights, np.int64).reshape(-1)
    widths = np.asarray(widths, np.int64).reshape(-1)
    k = len(segmentations)
    if k == 0:
        return empty_mask_set()
    h_out, w_out = heights.copy(), widths.copy()
    strings, string_idx, lists, list_idx, polys, poly_idx = [], [], [], [], [], []
    for i, seg in enumerate(segmentations):
        reason = segmentation_reason(seg)
        if reason:
            raise ValueError(f"{what} {label(i)} has a segmentation that {reason}.")
        if isinstance(seg, dict):
            if isinstance(seg["counts"], (str, bytes)):
                h_out[i], w_out[i] = seg["size"]
                strings.append(seg["counts"])
                string_idx.append(i)
            else:
                lists.append(seg["counts"])
                list_idx.append(i)
        else:
            polys.append(seg)
            poly_idx.append(i)

    def named(error, index):
        m = re.match(r"(?:string|mask) (\d+):? ?(.*)", str(error))
        if not m:
            return ValueError(f"{what}: {error}")
        return ValueError(f"{what} {label(index[int(m.group(1))])} has a bad RLE segmentation: {m.group(2)}.")

    sets = []
    try:
        flat = decode_rle_counts_many(strings)
        sets.append(masks_from_counts(None, h_out[string_idx], w_out[string_idx], flat=flat))
    except ValueError as error:
        raise named(error, string_idx) from None
    try:
        sets.append(masks_from_counts(lists, h_out[list_idx], w_out[list_idx]))
    except ValueError as error:
        raise named(error, list_idx) from None
    sets.append(masks_from_polygons(polys, heights[poly_idx], widths[poly_idx]))
    order = np.argsort(np.asarray(string_idx + list_idx + poly_idx, np.int64), kind="stable")
    return concat_mask_sets(sets).take(order)


def to_rle(masks):
    """Binary masks ``[K, H, W]`` (or a `MaskSet`) → compressed COCO RLE dicts ``{"size", "counts"}``."""
    ms = masks if isinstance(masks, MaskSet) else masks_from_dense(masks)
    return [{"size": [int(ms.heights[i]), int(ms.widths[i])], "counts": encode_rle_counts(ms.to_rle_counts(i))}
            for i in range(len(ms))]


# ----------------------------------------------------------------------------- IoU


def _coverage(starts, ends, cum, x):
    """Foreground pixels of the runs ``[starts, ends)`` (sorted, disjoint) before flat position ``x``."""
    k = np.searchsorted(ends, x, side="right")
    kc = np.minimum(k, starts.shape[0] - 1)
    partial = np.where(k < starts.shape[0], np.maximum(x - starts[kc], 0), 0)
    return cum[k] + partial


def mask_iou_pairs(dets, det_index, gts, gt_index, gt_iscrowd, det_areas=None, gt_areas=None):
    """Mask IoU of pairs ``(dets[det_index[p]], gts[gt_index[p]])``, pycocotools' way.

    Args:
        dets, gts: `MaskSet` s.
        det_index, gt_index: int ``[P]``.
        gt_iscrowd: bool ``[P]``: the union is the detection's area.
        det_areas, gt_areas: optional precomputed ``dets.areas`` / ``gts.areas``.

    Returns:
        float64 ``[P]``: ``inter / union`` (``inter / det area`` for crowds),
        0 without intersection, -1 where the two masks differ in size.
    """
    di = np.asarray(det_index, np.int64).reshape(-1)
    gi = np.asarray(gt_index, np.int64).reshape(-1)
    crowd = np.asarray(gt_iscrowd, bool).reshape(-1)
    if di.size == 0:
        return np.zeros((0,), np.float64)
    da = (dets.areas if det_areas is None else det_areas)[di]
    ga = (gts.areas if gt_areas is None else gt_areas)[gi]
    same = (dets.heights[di] == gts.heights[gi]) & (dets.widths[di] == gts.widths[gi])
    inter = np.zeros(di.shape, np.int64)
    if dets.starts.size and gts.starts.size:
        cum = np.r_[0, np.cumsum(dets.ends - dets.starts)]
        # The ground truth's runs, moved onto the detection's place on the flat axis, count the
        # detection's pixels they cover (other masks lie outside that place).
        n_runs = np.where(same, gts.run_ptr[gi + 1] - gts.run_ptr[gi], 0)
        runs, pair = _ranges(gts.run_ptr[gi], n_runs)
        shift = (dets.offsets[di] - gts.offsets[gi])[pair]
        got = _coverage(dets.starts, dets.ends, cum, gts.ends[runs] + shift) - _coverage(
            dets.starts, dets.ends, cum, gts.starts[runs] + shift)
        inter = np.bincount(pair, weights=got, minlength=di.shape[0]).astype(np.int64)
    union = np.where(crowd, da, da + ga - inter)
    iou = np.where(inter > 0, inter / np.where(inter > 0, union, 1).astype(np.float64), 0.0)
    return np.where(same, iou, -1.0)
