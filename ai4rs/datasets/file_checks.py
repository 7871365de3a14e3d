"""Bad image files found early and named: missing files at dataset build, undecodable ones at load.

Shared by every ai4rs dataset (DOTA, COCO...):

* :func:`check_image_files` (at build time): every image file of a dataset
  exists; all missing files are reported in one error.
* :class:`ImageDecodeError`: raised by ``LoadImageFromFile`` for a file that
  exists but cannot be decoded, naming the file.
* :func:`handle_bad_image` (in a dataset's ``prepare_data``): adds the
  dataset's name to that error, or, when the dataset is configured to skip bad
  images (training only), logs the skip with a running count and returns
  ``None`` so that mmengine's ``BaseDataset`` draws another sample.
* :func:`read_json_file`: an annotation / class-text / results json, with errors that
  name the file.
"""

import json
import logging
import os.path as osp
from collections import Counter
from collections.abc import Iterable

from mmengine.fileio import get_local_path
from mmengine.logging import print_log

#: at most this many missing files are listed in the message (all are counted)
MAX_LISTED = 100


class ImageDecodeError(OSError):
    """An image file exists but could not be decoded (truncated, corrupt, unknown format)."""


def _is_remote(path: str) -> bool:
    return '://' in path


def check_image_files(paths: Iterable[str], dataset_name: str) -> None:
    """Check that every local image file exists (one ``stat`` each).

    Args:
        paths (Iterable[str]): image paths as the pipeline will read them;
            remote URIs (``s3://...``) are not checked.
        dataset_name (str): named in the message (e.g. ``'DOTADataset'``).

    Raises:
        FileNotFoundError: one or more files do not exist; the message gives
            how many, and lists them (up to :data:`MAX_LISTED`), so that all
            can be fixed at once.
    """
    paths = list(paths)
    missing = [p for p in paths if not _is_remote(p) and not osp.isfile(p)]
    if not missing:
        return
    listed = '\n  '.join(missing[:MAX_LISTED])
    more = f'\n  ... and {len(missing) - MAX_LISTED} more' if len(missing) > MAX_LISTED else ''
    folders = sorted({osp.dirname(p) for p in missing})[:3]
    raise FileNotFoundError(
        f'{dataset_name}: {len(missing)} of {len(paths)} image files do not exist '
        f'(looked in {", ".join(folders)}; check data_root, data_prefix.img_path and the '
        f'image suffix):\n  {listed}{more}'
    )


_skipped: Counter = Counter()


def handle_bad_image(
    error: ImageDecodeError, dataset_name: str, skip: bool, test_mode: bool = False
):
    """What a dataset does when an image of one of its samples cannot be decoded.

    Args:
        error (ImageDecodeError): from the loading transform (it names the file).
        dataset_name (str): named in the message.
        skip (bool): log and skip the sample (return ``None``) instead of
            raising; never in ``test_mode``, where every image must be read.

    Returns:
        None: when skipping (mmengine's ``BaseDataset`` then draws another sample).

    Raises:
        ImageDecodeError: with the dataset's name, when not skipping.
    """
    if not skip or test_mode:
        hint = (
            ''
            if test_mode
            else (
                ' (set skip_bad_images=True in the dataset config to skip '
                'such images with a warning)'
            )
        )
        raise ImageDecodeError(f'{dataset_name}: {error}{hint}') from None
    _skipped[dataset_name] += 1
    print_log(
        f'{dataset_name}: skipped a sample: {error} ({_skipped[dataset_name]} skipped '
        'so far in this process)',
        logger='current',
        level=logging.WARNING,
    )
    return None


def skipped_image_count(dataset_name: str) -> int:
    """How many samples :func:`handle_bad_image` skipped for ``dataset_name`` in this process."""
    return _skipped[dataset_name]


def read_json_file(path: str, what: str, backend_args: dict | None = None):
    """The json value of ``path``.

    Args:
        path (str): a local file, or a remote one with ``backend_args``.
        what (str): what the file is, for the message, e.g. ``'class text file'``.
        backend_args (dict, optional): mmengine file backend arguments.

    Raises:
        FileNotFoundError: ``{what} not found: path`` (local files).
        ValueError: ``path: not a valid json file (...)``.
    """
    if backend_args is None and not osp.isfile(path):
        raise FileNotFoundError(f'{what} not found: {path!r}')
    with get_local_path(path, backend_args=backend_args) as local_path:
        try:
            with open(local_path, encoding='utf-8') as f:
                return json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f'{path}: not a valid json file ({e})') from None
