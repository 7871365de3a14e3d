"""Reading a COCO json, checked: every error names the file (and the annotation id at fault).

Used by :class:`ai4rs.datasets.CocoDataset` and by ``CocoMetric`` (its ``ann_file``).
"""

import math

from .file_checks import read_json_file


def load_coco_json(
    path: str, backend_args: dict | None = None, require_annotations: bool = True
) -> dict:
    """Read and check a COCO json, with errors that name the file.

    Checks: the file exists and is a json object with ``images`` and ``categories`` lists
    (and ``annotations``, unless ``require_annotations`` is False: test-set jsons have
    none); every image has ``id``/``file_name``/``width``/``height``; category ids and
    annotation ids are unique; each annotation names a known image and category and has a
    4-number finite ``bbox``.

    Returns:
        dict: the json dict (``annotations`` added as ``[]`` when absent and allowed).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: anything else above (file, and annotation id where one is at fault).
    """
    data = read_json_file(path, 'COCO annotation file', backend_args)
    if not isinstance(data, dict):
        raise ValueError(
            f'{path}: a COCO annotation file holds a json object with images, '
            f'annotations and categories; got a {type(data).__name__}'
        )
    required = ['images', 'categories'] + (['annotations'] if require_annotations else [])
    missing = [k for k in required if not isinstance(data.get(k), list)]
    if missing:
        raise ValueError(
            f'{path}: not a COCO detection annotation file: no {missing} list '
            f'(keys present: {sorted(data)})'
        )
    data.setdefault('annotations', [])
    if not isinstance(data['annotations'], list):
        raise ValueError(f'{path}: "annotations" must be a list')
    img_ids = set()
    for img in data['images']:
        absent = [k for k in ('id', 'file_name', 'width', 'height') if k not in img]
        if absent:
            raise ValueError(f'{path}: image record {img.get("id", img)!r} has no {absent}')
        img_ids.add(img['id'])
    cat_ids = [c.get('id') for c in data['categories']]
    if None in cat_ids or len(set(cat_ids)) != len(cat_ids):
        raise ValueError(f'{path}: category ids must be present and unique, got {cat_ids}')
    cat_ids = set(cat_ids)
    ann_ids = set()
    for ann in data['annotations']:
        ann_id = ann.get('id')
        if ann_id is None:
            raise ValueError(f'{path}: an annotation has no id: {ann}')
        if ann_id in ann_ids:
            raise ValueError(f'{path}: annotation id {ann_id} is not unique')
        ann_ids.add(ann_id)
        if ann.get('image_id') not in img_ids:
            raise ValueError(
                f'{path}: annotation {ann_id} names image_id '
                f'{ann.get("image_id")!r}, which is not in "images"'
            )
        if ann.get('category_id') not in cat_ids:
            raise ValueError(
                f'{path}: annotation {ann_id} names category_id '
                f'{ann.get("category_id")!r}, which is not in "categories" '
                f'(ids {sorted(cat_ids)})'
            )
        bbox = ann.get('bbox')
        if (
            not isinstance(bbox, (list, tuple))
            or len(bbox) != 4
            or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in bbox)
        ):
            raise ValueError(
                f'{path}: annotation {ann_id}: bbox must be 4 finite numbers '
                f'[x, y, w, h], got {bbox!r}'
            )
    return data
