"""Class-text vocabulary files (YOLO-World's ``data/texts/*.json``).

A vocabulary file is a json list with one entry per class, in class order; each entry is a
list of one or more non-empty strings naming that class (synonyms / prompts)::

    [["person"], ["bicycle"], ["car"], ...]

The COCO 80 vocabulary ships as ``configs/_base_/texts/coco_class_texts.json``.
"""

import os.path as osp

from .file_checks import read_json_file


def load_class_texts(
    path: str, num_classes: int | None = None, backend_args: dict | None = None
) -> list[list[str]]:
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
    texts = read_json_file(path, 'class text file', backend_args)
    if not isinstance(texts, list):
        raise ValueError(
            f'{path}: a class text file holds a json list of lists of strings, '
            f'e.g. [["person"], ["bicycle"]]; got a {type(texts).__name__}'
        )
    for i, entry in enumerate(texts):
        if (
            not isinstance(entry, list)
            or not entry
            or not all(isinstance(t, str) and t.strip() for t in entry)
        ):
            raise ValueError(
                f'{path}: entry {i} must be a non-empty list of non-empty strings, got {entry!r}'
            )
    if num_classes is not None and len(texts) != num_classes:
        raise ValueError(
            f'{path}: {len(texts)} class texts, but the dataset has '
            f'{num_classes} classes; the two must be the same'
        )
    return texts


def read_vocabulary(arg: str | list[str], what: str = '--texts') -> list[str]:
    """A vocabulary (one string per class) as a command line gives it.

    Args:
        arg (str | list[str]): ``"person,dog,bus"`` (comma-separated), or one path to a .txt
            file (one text per line) or a .json file (strings, or lists whose first string is
            used, as in a class-text file); a list of strings is taken as given, unless it
            holds one such path.
        what (str): the option's name for the messages.

    Returns:
        list[str]: the texts, in order.

    Raises:
        FileNotFoundError: a named .txt / .json file does not exist.
        ValueError: no text, a non-string entry, a text given twice, or a .json file that
            is not valid json (the file named).
    """
    items = [arg] if isinstance(arg, str) else list(arg)
    if len(items) == 1 and items[0].endswith(('.txt', '.json')):
        path = items[0]
        if not osp.isfile(path):
            raise FileNotFoundError(f'{what}: text file not found: {path}')
        if path.endswith('.json'):
            entries = read_json_file(path, f'{what}: text file')
            texts = [t[0] if isinstance(t, (list, tuple)) and t else t for t in entries]
        else:
            with open(path, encoding='utf-8') as f:
                texts = [line.strip() for line in f if line.strip()]
        where = path
    elif isinstance(arg, str):
        texts, where = [t.strip() for t in arg.split(',') if t.strip()], repr(arg)
    else:
        texts, where = items, repr(items)
    bad = [t for t in texts if not isinstance(t, str) or not t.strip()]
    if not texts or bad:
        raise ValueError(
            f'{what} {where}: expected one or more non-empty texts'
            + (f', got {bad[:3]}' if bad else '')
        )
    if len(set(texts)) != len(texts):
        dup = sorted({t for t in texts if texts.count(t) > 1})
        raise ValueError(f'{what} {where} holds duplicates: {dup[:5]}')
    return texts
