"""Class-text vocabulary files (YOLO-World's ``data/texts/*.json``).

A vocabulary file is a json list with one entry per class, in class order; each entry is a
list of one or more non-empty strings naming that class (synonyms / prompts)::

    [["person"], ["bicycle"], ["car"], ...]

The COCO 80 vocabulary ships as ``configs/_base_/texts/coco_class_texts.json``.
"""
import json
import os.path as osp

from mmengine.fileio import get_local_path


def load_class_texts(path: str, num_classes: int | None = None,
                     backend_args: dict | None = None) -> list[list[str]]:
    """Read and check a class-text json.

    Args:
        path (str): the json file.
        num_classes (int, optional): the expected number of classes.
        backend_args (dict, optional): mmengine file backend arguments.

    Returns:
        list[list[str]]: the texts of each class.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: not valid json, not a list of lists of non-empty strings (the class
            index is named), or not ``num_classes`` entries.
    """
    if backend_args is None and not osp.isfile(path):
        raise FileNotFoundError(f'class text file not found: {path!r}')
    with get_local_path(path, backend_args=backend_args) as local_path:
        try:
            with open(local_path, encoding='utf-8') as f:
                texts = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f'{path}: not a valid json file ({e})') from None
    if not isinstance(texts, list):
        raise ValueError(f'{path}: a class text file holds a json list of lists of strings, '
                         f'e.g. [["person"], ["bicycle"]]; got a {type(texts).__name__}')
    for i, entry in enumerate(texts):
        if (not isinstance(entry, list) or not entry
                or not all(isinstance(t, str) and t.strip() for t in entry)):
            raise ValueError(f'{path}: entry {i} must be a non-empty list of non-empty '
                             f'strings, got {entry!r}')
    if num_classes is not None and len(texts) != num_classes:
        raise ValueError(f'{path}: {len(texts)} class texts, but the dataset has '
                         f'{num_classes} classes; the two must be the same')
    return texts
