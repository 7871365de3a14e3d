"""Annotation converters to and from DOTA label files, checked as they go.

The logic of the scripts of ``tools/dataset_converters/`` as importable functions:

- YOLO-OBB (Ultralytics: one ``.txt`` per image, a line ``class_index x1 y1 x2 y2 x3 y3 x4 y4``
  with the corners normalised to [0, 1] by the image width / height) <-> DOTA
  (``x1 y1 ... x4 y4 class_name difficulty`` in pixels): :func:`yolo_obb_to_dota`,
  :func:`dota_to_yolo_obb`. YOLO-OBB has no difficulty: DOTA -> YOLO-OBB drops it, YOLO-OBB ->
  DOTA writes 0.
- labelme json (polygons, rectangles, rotated rectangles) -> DOTA: :func:`labelme_to_dota`.
- COCO (polygon / RLE segmentation, or only a bbox) -> DOTA: :func:`coco_to_dota`.
- DOTA -> COCO (horizontal boxes, the polygon as segmentation): :func:`dota_to_coco`.

A point set that is not already four corners becomes its minimum-area rectangle by the
project's rule (:func:`min_area_rect_corners`: the exact rotating-calipers rectangle of
:func:`ai4rs.structures.bbox.min_area_rect`, le90, corners in :func:`rbox_corners` order), the
rectangle ``RotatedBoxes.from_instance_masks`` gives.

Every malformed entry is reported in a :class:`ConversionReport` as ``file:line: reason`` (text
files), ``file:line: shapes[i] ('label'): reason`` (labelme) or ``file: annotation id N: reason``
(COCO), skipped and counted; with ``strict=True`` the first one raises :class:`ConversionError`
instead.
"""

import bisect
import json
import os
import os.path as osp
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ai4rs.structures.bbox.geometry import min_area_rect, rbox_corners
from ai4rs.structures.bbox.mask_points import convex_hull

from ..coco_json import load_coco_json
from ..dota import MIN_POLYGON_AREA, load_dota_labels

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.tif', '.tiff', '.bmp')

#: default tolerance on corners outside the image (a fraction of its width / height)
DEFAULT_TOLERANCE = 0.01


class ConversionError(ValueError):
    """A malformed entry met with ``strict=True``; the message names file and line (or entry)."""


@dataclass
class ConversionReport:
    """What a conversion did: files and objects written, entries skipped and why.

    Attributes:
        files (int): output files written (DOTA / YOLO-OBB label files; images of a COCO json).
        objects (int): objects written.
        skipped (int): malformed entries skipped (lines, shapes, annotations, files).
        messages (list[str]): one ``where: reason`` per skipped entry, plus notes (``note:``
            messages, e.g. a renamed category) that skip nothing.
        strict (bool): raise :class:`ConversionError` on the first malformed entry.
    """

    strict: bool = False
    files: int = 0
    objects: int = 0
    skipped: int = 0
    messages: list[str] = field(default_factory=list)

    def skip(self, where: str, reason: str) -> None:
        """Record (or, when strict, raise) a malformed entry at ``where`` (``file:line``)."""
        msg = f'{where}: {reason}'
        if self.strict:
            raise ConversionError(msg)
        self.skipped += 1
        self.messages.append(msg)

    def note(self, msg: str) -> None:
        """Record something the user should know that skips nothing."""
        self.messages.append(f'note: {msg}')

    def summary(self) -> str:
        """``converted N files, M objects; skipped K entries (see messages)``."""
        return (
            f'converted {self.files} files, {self.objects} objects; '
            f'skipped {self.skipped} entries (see messages)'
        )

    def format(self) -> str:
        """The summary followed by every message, one per line."""
        return '\n'.join([self.summary()] + [f'  {m}' for m in self.messages])


# ------------------------------------------------------------------------------ helpers


def prepare_out_dir(out_dir: str, overwrite: bool = False) -> None:
    """Create ``out_dir``; refuse a non-empty one unless ``overwrite``.

    Raises:
        FileExistsError: ``out_dir`` exists and holds files, and not ``overwrite``.
        NotADirectoryError: ``out_dir`` is a file.
    """
    if osp.exists(out_dir) and not osp.isdir(out_dir):
        raise NotADirectoryError(f'output folder {out_dir!r} is a file')
    if osp.isdir(out_dir) and os.listdir(out_dir) and not overwrite:
        raise FileExistsError(
            f'output folder {out_dir!r} is not empty; choose another one or pass --overwrite'
        )
    os.makedirs(out_dir, exist_ok=True)


def load_class_names(spec: str | Sequence[str]) -> list[str]:
    """Class names from a file or a list.

    Args:
        spec: a ``.yaml`` / ``.yml`` file with ``names:`` (Ultralytics' data.yaml: a list, or a
            dict ``{index: name}`` with indices 0..N-1), a ``.txt`` / other file with one name per
            line (blank lines ignored), or the names themselves (a list, or a comma-separated
            string).

    Raises:
        FileNotFoundError: a single item that looks like a file (``.yaml``, ``.yml``, ``.txt``, a
            path separator) does not exist (rather than becoming a class named like it).
        ValueError: no names, a name with whitespace (a DOTA line cannot hold it), a repeated
            name, or a ``names:`` dict whose keys are not 0..N-1; the file is named.
    """
    if isinstance(spec, str):
        spec = [spec]
    spec = list(spec)
    source = 'class list'
    looks_like_file = len(spec) == 1 and (
        spec[0].lower().endswith(('.yaml', '.yml', '.txt')) or os.sep in spec[0]
    )
    if looks_like_file and not osp.isfile(spec[0]):
        raise FileNotFoundError(f'class list file {spec[0]!r} does not exist')
    if len(spec) == 1 and osp.isfile(spec[0]):
        path = source = spec[0]
        if path.lower().endswith(('.yaml', '.yml')):
            import yaml

            with open(path, encoding='utf-8') as f:
                data = yaml.safe_load(f)
            names = data.get('names') if isinstance(data, dict) else None
            if isinstance(names, dict):
                keys = sorted(names)
                if keys != list(range(len(keys))):
                    raise ValueError(f'{path}: names: keys must be 0..{len(keys) - 1}, got {keys}')
                names = [names[k] for k in keys]
            if not isinstance(names, list):
                raise ValueError(f'{path}: no "names:" list or dict (a data.yaml holds one)')
            names = [str(n) for n in names]
        else:
            with open(path, encoding='utf-8-sig') as f:
                names = [line.strip() for line in f if line.strip()]
    else:
        names = [n.strip() for item in spec for n in str(item).split(',') if n.strip()]
    if not names:
        raise ValueError(f'{source}: no class names')
    bad = [n for n in names if len(n.split()) != 1]
    if bad:
        raise ValueError(f'{source}: class names must not hold whitespace (DOTA lines): {bad}')
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f'{source}: repeated class names {dupes}')
    return names


def image_size(path: str) -> tuple[int, int]:
    """(width, height) of an image file, from its header (PIL), else by decoding it (cv2).

    Raises:
        OSError: the file cannot be read as an image (the file is named).
    """
    try:
        from PIL import Image

        with Image.open(path) as img:
            return int(img.size[0]), int(img.size[1])
    except Exception:
        pass
    import cv2

    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise OSError(f'{path}: not a readable image')
    return int(img.shape[1]), int(img.shape[0])


def images_by_stem(img_dir: str) -> dict[str, str]:
    """``{file stem: path}`` of the image files of ``img_dir`` (by extension, any case).

    Raises:
        FileNotFoundError: ``img_dir`` is not a folder.
        ValueError: two images share a stem (``a.png`` and ``a.jpg``).
    """
    if not osp.isdir(img_dir):
        raise FileNotFoundError(f'image folder {img_dir!r} does not exist')
    found: dict[str, str] = {}
    for name in sorted(os.listdir(img_dir)):
        stem, ext = osp.splitext(name)
        if ext.lower() not in IMAGE_EXTENSIONS:
            continue
        if stem in found:
            raise ValueError(
                f'{img_dir}: two images for the label file {stem}.txt: '
                f'{osp.basename(found[stem])} and {name}'
            )
        found[stem] = osp.join(img_dir, name)
    return found


def label_files(label_dir: str, suffix: str = '.txt') -> list[str]:
    """The ``suffix`` files of ``label_dir``, sorted.

    Raises:
        FileNotFoundError: ``label_dir`` is not a folder.
    """
    if not osp.isdir(label_dir):
        raise FileNotFoundError(f'label folder {label_dir!r} does not exist')
    return [
        osp.join(label_dir, n) for n in sorted(os.listdir(label_dir)) if n.lower().endswith(suffix)
    ]


def format_dota_line(polygon: Sequence[float], name: str, difficulty: int) -> str:
    """A DOTA line; pixel coordinates rounded to 1e-6 px, in Python's shortest float form."""
    coords = [repr(round(float(v), 6) + 0.0) for v in polygon]  # + 0.0: no '-0.0'
    return ' '.join(coords + [name, str(int(difficulty))])


def polygon_area(polygon: Sequence[float]) -> float:
    """Area of a simple polygon ``x1 y1 x2 y2 ...`` (shoelace, absolute value)."""
    pts = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    x, y = pts[:, 0], pts[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def min_area_rect_corners(points: np.ndarray) -> np.ndarray:
    """Corners of the minimum-area rectangle of a point set, by the project's rule.

    Args:
        points (np.ndarray): (K, 2) points ``(x, y)``, K >= 1.

    Returns:
        np.ndarray: (8,) float64 corners ``x1 y1 ... x4 y4`` of the le90 rectangle of
        :func:`min_area_rect` in :func:`rbox_corners` order (``c + v1 + v2``, ``c + v1 - v2``,
        ``c - v1 - v2``, ``c - v1 + v2``).
    """
    hull = convex_hull(np.asarray(points, dtype=np.float64).reshape(-1, 2))
    rbox = min_area_rect(torch.from_numpy(hull), 'le90')
    return rbox_corners(rbox).reshape(8).numpy().astype(np.float64)


def mask_pixel_corners(mask: np.ndarray) -> np.ndarray:
    """Corner points of a binary mask's pixels, enough for its hull and min-area rectangle.

    Pixel ``(x, y)`` covers the square ``[x, x + 1] x [y, y + 1]``; the points are the outer
    corners of the leftmost and rightmost set pixel of every row, whose convex hull is that of
    all set pixels' squares (so a mask filling ``[2, 6) x [3, 5)`` gives the box 2..6, 3..5).

    Args:
        mask (np.ndarray): (H, W) bool / uint8.

    Returns:
        np.ndarray: (K, 2) float64 points ``(x, y)``; (0, 2) for an empty mask.
    """
    m = np.asarray(mask).astype(bool)
    rows = np.flatnonzero(m.any(axis=1))
    if len(rows) == 0:
        return np.zeros((0, 2))
    left = m[rows].argmax(axis=1).astype(np.float64)
    right = (m.shape[1] - m[rows, ::-1].argmax(axis=1)).astype(np.float64)
    y0, y1 = rows.astype(np.float64), rows + 1.0
    xs = np.concatenate([left, left, right, right])
    ys = np.concatenate([y0, y1, y0, y1])
    return np.stack([xs, ys], axis=1)


def _degenerate(polygon: np.ndarray) -> bool:
    hull = convex_hull(np.asarray(polygon, dtype=np.float64).reshape(-1, 2))
    return len(hull) < 3 or polygon_area(hull.reshape(-1)) < MIN_POLYGON_AREA


def _write_lines(path: str, lines: list[str]) -> None:
    with open(path, 'w', encoding='utf-8') as f:
        f.write(''.join(line + '\n' for line in lines))


# ------------------------------------------------------------------- YOLO-OBB <-> DOTA


def parse_yolo_obb_lines(
    lines: Sequence[str],
    width: int,
    height: int,
    class_names: Sequence[str],
    report: ConversionReport,
    source: str,
    tolerance: float = DEFAULT_TOLERANCE,
) -> list[str]:
    """The DOTA lines of the lines of one YOLO-OBB label file.

    Args:
        lines: the file's lines.
        width, height: the image size in pixels.
        class_names: index -> name.
        report: receives one ``source:line: reason`` per malformed line (skipped).
        source: the file, for the messages.
        tolerance: normalised coordinates in ``[-tolerance, 1 + tolerance]`` are kept (not
            clipped); others make the line malformed, as does a polygon with no area.

    Returns:
        list[str]: DOTA lines ``x1 y1 ... x4 y4 class_name 0`` (pixels: ``x * width``,
        ``y * height``).
    """
    out = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f'{source}:{lineno}'
        tokens = line.split()
        if len(tokens) != 9:
            report.skip(
                where, f'expected "class_index x1 y1 ... x4 y4" (9 fields), got {len(tokens)}'
            )
            continue
        try:
            cls = int(tokens[0])
        except ValueError:
            report.skip(where, f'class index must be an integer, got {tokens[0]!r}')
            continue
        if not 0 <= cls < len(class_names):
            report.skip(where, f'class index {cls} is not in 0..{len(class_names) - 1}')
            continue
        try:
            coords = np.array([float(t) for t in tokens[1:]], dtype=np.float64)
        except ValueError:
            report.skip(where, f'corners must be 8 numbers: {line.strip()!r}')
            continue
        if not np.isfinite(coords).all():
            report.skip(where, f'corners must be finite: {line.strip()!r}')
            continue
        outside = (coords < -tolerance) | (coords > 1 + tolerance)
        if outside.any():
            report.skip(
                where,
                f'normalised corner {float(coords[outside][0])!r} is outside [0, 1] by more than '
                f'{tolerance}',
            )
            continue
        pixels = coords * np.array([width, height] * 4, dtype=np.float64)
        if _degenerate(pixels):
            report.skip(where, 'the polygon has no area')
            continue
        out.append(format_dota_line(pixels, class_names[cls], 0))
    return out


def _sized_label_files(files, images: dict, img_dir: str, report):
    """``(label file, stem, width, height)`` for each label file whose image (the same stem in
    ``img_dir``) gives its size; a label file without a readable image is reported and
    skipped."""
    for path in files:
        stem = osp.splitext(osp.basename(path))[0]
        if stem not in images:
            report.skip(path, f'no image {stem}.* in {img_dir}')
            continue
        try:
            width, height = image_size(images[stem])
        except OSError as e:
            report.skip(path, str(e))
            continue
        yield path, stem, width, height


def yolo_obb_to_dota(
    label_dir: str,
    img_dir: str,
    out_dir: str,
    class_names: Sequence[str],
    tolerance: float = DEFAULT_TOLERANCE,
    strict: bool = False,
    overwrite: bool = False,
) -> ConversionReport:
    """Convert a folder of YOLO-OBB label files into DOTA label files (same stems).

    Each label file's image (same stem, in ``img_dir``) gives the size that the coordinates
    are scaled by; a label file without an image is reported and skipped. Difficulty is 0.
    """
    report = ConversionReport(strict=strict)
    images = images_by_stem(img_dir)
    files = label_files(label_dir)
    prepare_out_dir(out_dir, overwrite)
    for path, stem, width, height in _sized_label_files(files, images, img_dir, report):
        text = _read_text(path, report)
        if text is None:
            continue
        lines = parse_yolo_obb_lines(
            text.split('\n'), width, height, class_names, report, path, tolerance
        )
        _write_lines(osp.join(out_dir, stem + '.txt'), lines)
        report.files += 1
        report.objects += len(lines)
    return report


def dota_to_yolo_obb(
    label_dir: str,
    img_dir: str,
    out_dir: str,
    class_names: Sequence[str],
    tolerance: float = DEFAULT_TOLERANCE,
    strict: bool = False,
    overwrite: bool = False,
    precision: int = 10,
) -> ConversionReport:
    """Convert a folder of DOTA label files into YOLO-OBB label files (same stems).

    Corners are divided by the image's width / height (read from the image of the same stem)
    and written with ``precision`` significant digits, unclipped; a corner outside the image
    by more than ``tolerance`` (of its size) is reported and its object skipped, as are
    malformed lines, polygons with no area and class names not in ``class_names``. Header
    lines and difficulties are dropped (YOLO-OBB has neither).
    """
    report = ConversionReport(strict=strict)
    index = {n: i for i, n in enumerate(class_names)}
    images = images_by_stem(img_dir)
    files = label_files(label_dir)
    prepare_out_dir(out_dir, overwrite)
    for path, stem, width, height in _sized_label_files(files, images, img_dir, report):
        labels = _read_dota(path, report)
        if labels is None:
            continue
        scale = np.array([width, height] * 4, dtype=np.float64)
        out = []
        for polygon, name, lineno in zip(labels.polygons, labels.names, labels.line_numbers):
            where = f'{path}:{lineno}'
            if name not in index:
                report.skip(where, f'class {name!r} is not in the class list')
                continue
            if _degenerate(polygon):
                report.skip(where, 'the polygon has no area')
                continue
            coords = polygon / scale
            outside = (coords < -tolerance) | (coords > 1 + tolerance)
            if outside.any():
                report.skip(
                    where,
                    f'corner {float(polygon[outside][0])!r} is outside the {width}x{height} '
                    f'image by more than {tolerance} of its size',
                )
                continue
            out.append(' '.join([str(index[name])] + [f'{v:.{precision}g}' for v in coords]))
        _write_lines(osp.join(out_dir, stem + '.txt'), out)
        report.files += 1
        report.objects += len(out)
    return report


def _read_dota(path: str, report: ConversionReport):
    """``load_dota_labels`` of ``path``, each malformed line a skipped entry ``path:N: reason``;
    None (reported) when the file is not UTF-8 text."""

    def on_skip(msg: str) -> None:
        lineno, reason = msg.removeprefix(f'{path}, line ').split(': ', 1)  # its format
        report.skip(f'{path}:{lineno}', reason)

    try:
        return load_dota_labels(path, strict=False, on_skip=on_skip)
    except UnicodeDecodeError as e:
        report.skip(path, f'not a UTF-8 text file ({e.reason} at byte {e.start})')
        return None


def _read_text(path: str, report: ConversionReport) -> str | None:
    """The text of a label file, or None (reported) when it is not UTF-8 text."""
    try:
        with open(path, encoding='utf-8-sig') as f:
            return f.read()
    except UnicodeDecodeError as e:
        report.skip(path, f'not a UTF-8 text file ({e.reason} at byte {e.start})')
        return None


# --------------------------------------------------------------------------- labelme

_JSON_SPACE = re.compile(r'[ \t\n\r]*')


def json_array_item_lines(text: str, key: str) -> list[int]:
    """The 1-based line on which each item of the array ``key`` of a json object starts.

    Args:
        text (str): a json document whose top-level value is an object.
        key (str): a key of that object whose value is an array (e.g. ``'shapes'``).

    Returns:
        list[int]: one line number per item, in order; ``[]`` when the document is not such an
        object, has no such key, or is not valid json.
    """
    decoder = json.JSONDecoder()
    newlines = [i for i, c in enumerate(text) if c == '\n']

    def skip(i: int, sep: str = '') -> int:
        i = _JSON_SPACE.match(text, i).end()
        if sep and text[i] == sep:
            i = _JSON_SPACE.match(text, i + 1).end()
        return i

    try:
        i = skip(0)
        if text[i] != '{':
            return []
        i = skip(i + 1)
        while text[i] == '"':
            name, i = json.decoder.scanstring(text, i + 1)
            i = skip(i)
            if text[i] != ':':
                return []
            i = skip(i + 1)
            if name == key and text[i] == '[':
                lines = []
                i = skip(i + 1)
                while text[i] != ']':
                    lines.append(bisect.bisect_left(newlines, i) + 1)
                    _, i = decoder.raw_decode(text, i)
                    i = skip(i, ',')
                return lines
            _, i = decoder.raw_decode(text, i)
            i = skip(i, ',')
    except (ValueError, IndexError):
        pass
    return []


def labelme_shape_polygon(shape: dict) -> np.ndarray:
    """The (8,) DOTA corners of one labelme shape.

    - ``polygon`` of 4 points and ``rotation`` (labelme's rotated rectangle, 4 points): the
      points as they are;
    - ``polygon`` of 3 or more points (not 4): their minimum-area rectangle
      (:func:`min_area_rect_corners`);
    - ``rectangle`` (2 opposite corners): ``(xmin, ymin), (xmax, ymin), (xmax, ymax),
      (xmin, ymax)``.

    Raises:
        ValueError: another shape type, a wrong number of points, or non-finite points.
    """
    kind = shape.get('shape_type', 'polygon')  # labelme's default shape type
    try:
        pts = np.asarray(shape.get('points'), dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f'points must be [[x, y], ...], got {shape.get("points")!r}') from None
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f'points must be [[x, y], ...], got {shape.get("points")!r}')
    if not np.isfinite(pts).all():
        raise ValueError('points must be finite')
    n = len(pts)
    if kind == 'rotation':
        if n != 4:
            raise ValueError(f'a rotation shape has 4 points, got {n}')
        return pts.reshape(8)
    if kind == 'polygon':
        if n < 3:
            raise ValueError(f'a polygon has 3 or more points, got {n}')
        return pts.reshape(8) if n == 4 else min_area_rect_corners(pts)
    if kind == 'rectangle':
        if n != 2:
            raise ValueError(f'a rectangle shape has 2 points, got {n}')
        (x1, y1), (x2, y2) = pts.min(axis=0), pts.max(axis=0)
        return np.array([x1, y1, x2, y1, x2, y2, x1, y2], dtype=np.float64)
    raise ValueError(f'shape_type {kind!r} is not converted (polygon, rectangle, rotation are)')


def labelme_to_dota(
    json_paths: Sequence[str],
    out_dir: str,
    class_names: Sequence[str] | None = None,
    strict: bool = False,
    overwrite: bool = False,
) -> ConversionReport:
    """Convert labelme json files into DOTA label files (one per json, same stem).

    Labels are kept as they are, or, with ``class_names``, must be one of them. A shape's
    difficulty is 1 when it has ``"difficult": true`` (or ``flags.difficult``), else 0.
    A shape that cannot be converted (see :func:`labelme_shape_polygon`), a label not in
    ``class_names`` or holding whitespace, and a degenerate result (no area) are reported as
    ``file:line: shapes[i] (label): reason`` (the line where the shape starts) and skipped;
    a file that is not labelme json is reported and skipped whole.
    """
    report = ConversionReport(strict=strict)
    known = set(class_names) if class_names is not None else None
    prepare_out_dir(out_dir, overwrite)
    stems = {}
    for path in json_paths:
        stem = osp.splitext(osp.basename(path))[0]
        if stem in stems:
            raise ValueError(f'{path} and {stems[stem]} would write the same {stem}.txt')
        stems[stem] = path
        try:
            with open(path, encoding='utf-8-sig') as f:
                text = f.read()
            data = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            report.skip(path, f'not a valid json file ({e})')
            continue
        shapes = data.get('shapes') if isinstance(data, dict) else None
        if not isinstance(shapes, list):
            report.skip(path, 'not a labelme file (no "shapes" list)')
            continue
        shape_lines = json_array_item_lines(text, 'shapes')
        lines = []
        for i, shape in enumerate(shapes):
            label = shape.get('label') if isinstance(shape, dict) else None
            at = f'{path}:{shape_lines[i]}' if len(shape_lines) == len(shapes) else path
            where = f'{at}: shapes[{i}] ({label!r})'
            if not isinstance(label, str) or len(label.split()) != 1:
                report.skip(where, 'label must be one word (a DOTA class name)')
                continue
            if known is not None and label not in known:
                report.skip(where, f'label {label!r} is not in the class list')
                continue
            try:
                polygon = labelme_shape_polygon(shape)
            except ValueError as e:
                report.skip(where, str(e))
                continue
            if _degenerate(polygon):
                report.skip(where, 'the shape has no area')
                continue
            flags = shape.get('flags') if isinstance(shape.get('flags'), dict) else {}
            difficult = bool(shape.get('difficult') or flags.get('difficult'))
            lines.append(format_dota_line(polygon, label, int(difficult)))
        _write_lines(osp.join(out_dir, stem + '.txt'), lines)
        report.files += 1
        report.objects += len(lines)
    return report


# ------------------------------------------------------------------------- COCO -> DOTA


def coco_annotation_points(ann: dict, height: int, width: int) -> np.ndarray:
    """The points whose minimum-area rectangle is the annotation's DOTA polygon.

    - polygon segmentation (a list of flat ``[x1, y1, x2, y2, ...]`` parts): all points of all
      parts;
    - RLE segmentation (``{'size': [h, w], 'counts': ...}``, compressed or not): decoded with
      pycocotools, the corners of the mask's pixels (:func:`mask_pixel_corners`);
    - no segmentation (absent or empty): the bbox's 4 corners.

    Raises:
        ValueError: a malformed segmentation (odd or too few values, non-numbers, an RLE that
            pycocotools refuses or whose size is not the image's).
    """
    seg = ann.get('segmentation')
    if seg is None or (isinstance(seg, list) and len(seg) == 0):
        x, y, w, h = (float(v) for v in ann['bbox'])
        return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], dtype=np.float64)
    if isinstance(seg, list):
        parts = []
        for j, part in enumerate(seg):
            try:
                arr = np.asarray(part, dtype=np.float64)
            except (TypeError, ValueError):
                raise ValueError(f'segmentation part {j} is not a list of numbers') from None
            if arr.ndim != 1 or len(arr) % 2 or len(arr) < 6:
                raise ValueError(
                    f'segmentation part {j} must be x1 y1 x2 y2 ... of 3 or more points, '
                    f'got {arr.size} values'
                )
            if not np.isfinite(arr).all():
                raise ValueError(f'segmentation part {j} holds a non-finite value')
            parts.append(arr.reshape(-1, 2))
        return np.concatenate(parts, axis=0)
    if isinstance(seg, dict):
        from pycocotools import mask as mask_utils

        size = seg.get('size')
        if not (isinstance(size, list) and len(size) == 2):
            raise ValueError(f'RLE segmentation needs "size": [h, w], got {size!r}')
        if list(size) != [height, width]:
            raise ValueError(f'RLE size {size} is not the image size [{height}, {width}]')
        try:
            rle = mask_utils.frPyObjects(seg, *size) if isinstance(seg['counts'], list) else seg
            mask = mask_utils.decode(rle)
        except Exception as e:
            raise ValueError(f'RLE segmentation cannot be decoded ({e})') from None
        return mask_pixel_corners(mask)
    raise ValueError(f'segmentation must be a list of polygons or an RLE dict, got {seg!r}')


def dota_class_name(name: str) -> str:
    """A COCO category name as a DOTA class name: whitespace runs become ``-``."""
    return '-'.join(str(name).split())


def coco_to_dota(
    json_path: str, out_dir: str, strict: bool = False, overwrite: bool = False
) -> ConversionReport:
    """Convert a COCO json into DOTA label files, one per image (empty for an image without
    annotations), named by the stem of the image's ``file_name``.

    Each annotation becomes the minimum-area rectangle of :func:`coco_annotation_points`
    (:func:`min_area_rect_corners`); ``iscrowd`` annotations get difficulty 1, others 0. A
    category name with whitespace becomes ``-``-joined (noted). A malformed or degenerate
    (no area) annotation is reported as ``file: annotation id N: reason`` and skipped; the
    json's structure is checked by :func:`load_coco_json` (an error naming the file).
    """
    report = ConversionReport(strict=strict)
    data = load_coco_json(json_path)
    names = {}
    for cat in data['categories']:
        name = dota_class_name(cat.get('name', ''))
        if not name:
            raise ValueError(f'{json_path}: category {cat["id"]} has no name')
        if name != cat['name']:
            report.note(f'category {cat["name"]!r} is written as {name!r}')
        names[cat['id']] = name
    images, stems = {}, {}
    for img in data['images']:
        stem = osp.splitext(osp.basename(str(img['file_name'])))[0]
        if stem in stems:
            raise ValueError(
                f'{json_path}: images {stems[stem]!r} and {img["file_name"]!r} would write '
                f'the same {stem}.txt'
            )
        stems[stem] = img['file_name']
        images[img['id']] = (stem, int(img['height']), int(img['width']), [])
    prepare_out_dir(out_dir, overwrite)
    for ann in data['annotations']:
        stem, height, width, lines = images[ann['image_id']]
        where = f'{json_path}: annotation id {ann["id"]}'
        try:
            points = coco_annotation_points(ann, height, width)
        except ValueError as e:
            report.skip(where, str(e))
            continue
        if len(points) == 0 or _degenerate(points.reshape(-1)):
            report.skip(where, 'the segmentation (or bbox) has no area')
            continue
        polygon = min_area_rect_corners(points)
        difficulty = int(bool(ann.get('iscrowd')))
        lines.append(format_dota_line(polygon, names[ann['category_id']], difficulty))
    for stem, _, _, lines in images.values():
        _write_lines(osp.join(out_dir, stem + '.txt'), lines)
        report.files += 1
        report.objects += len(lines)
    return report


# ------------------------------------------------------------------------- DOTA -> COCO


def dota_to_coco(
    label_dir: str,
    img_dir: str,
    out_file: str,
    class_names: Sequence[str],
    strict: bool = False,
    overwrite: bool = False,
) -> ConversionReport:
    """Convert a folder of DOTA label files into one COCO json (horizontal boxes).

    Images: one per label file with an image of the same stem in ``img_dir`` (ids 1.., in
    stem order; ``file_name`` the image's name, its size read from it). Categories: ids 1..N
    in ``class_names`` order. Annotations (ids 1..): ``bbox`` ``[x, y, w, h]`` of the polygon's
    enclosing box, ``segmentation`` ``[polygon]``, ``area`` the polygon's area (shoelace),
    ``iscrowd`` 1 for a difficulty >= 1 (so that ``CocoDataset`` and COCO evaluation ignore
    the object, as DOTA's evaluation ignores difficult ones), 0 otherwise, and ``difficulty``
    the DOTA value. Malformed lines, unknown classes and degenerate polygons are reported
    (``file:line``) and skipped; a label file without an image is reported and skipped.

    Raises:
        FileExistsError: ``out_file`` exists and not ``overwrite``.
    """
    report = ConversionReport(strict=strict)
    if osp.exists(out_file) and not overwrite:
        raise FileExistsError(f'{out_file!r} exists; choose another file or pass --overwrite')
    cat_ids = {n: i for i, n in enumerate(class_names, start=1)}
    images_found = images_by_stem(img_dir)
    out = dict(
        images=[],
        annotations=[],
        categories=[dict(id=i, name=n) for n, i in cat_ids.items()],
    )
    for path in label_files(label_dir):
        stem = osp.splitext(osp.basename(path))[0]
        if stem not in images_found:
            report.skip(path, f'no image {stem}.* in {img_dir}')
            continue
        try:
            width, height = image_size(images_found[stem])
        except OSError as e:
            report.skip(path, str(e))
            continue
        labels = _read_dota(path, report)
        if labels is None:
            continue
        image_id = len(out['images']) + 1
        out['images'].append(
            dict(
                id=image_id,
                file_name=osp.basename(images_found[stem]),
                width=width,
                height=height,
            )
        )
        for polygon, name, diff, lineno in zip(
            labels.polygons, labels.names, labels.difficulties, labels.line_numbers
        ):
            where = f'{path}:{lineno}'
            if name not in cat_ids:
                report.skip(where, f'class {name!r} is not in the class list')
                continue
            if _degenerate(polygon):
                report.skip(where, 'the polygon has no area')
                continue
            pts = polygon.reshape(4, 2)
            (x1, y1), (x2, y2) = pts.min(axis=0), pts.max(axis=0)
            out['annotations'].append(
                dict(
                    id=len(out['annotations']) + 1,
                    image_id=image_id,
                    category_id=cat_ids[name],
                    bbox=[float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
                    segmentation=[[float(v) for v in polygon]],
                    area=polygon_area(polygon),
                    iscrowd=int(diff >= 1),
                    difficulty=int(diff),
                )
            )
            report.objects += 1
        report.files += 1
    out_parent = osp.dirname(osp.abspath(out_file))
    os.makedirs(out_parent, exist_ok=True)
    with open(out_file, 'w', encoding='utf-8') as f:
        json.dump(out, f)
    return report


# ----------------------------------------------------------------------------- scripts


def add_common_args(parser) -> None:
    """``--strict`` and ``--overwrite``, shared by the scripts of tools/dataset_converters/."""
    parser.add_argument(
        '--strict',
        action='store_true',
        help='stop at the first malformed entry (by default it is reported and skipped)',
    )
    parser.add_argument(
        '--overwrite',
        action='store_true',
        help='write into a non-empty output folder (replace an existing output file)',
    )


def run_conversion(convert, *args, **kwargs) -> int:
    """Run a converter for a script: print its report, return the exit status.

    Returns:
        int: 0 when it ran (the summary and every message printed), 1 on an error (printed
        to stderr as ``error: ...``): a malformed entry with ``strict``, a refused output folder, a
        missing input.
    """
    try:
        report = convert(*args, **kwargs)
    except (ValueError, FileExistsError, FileNotFoundError, NotADirectoryError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    print(report.format())
    return 0
