"""The ``manifest.json`` of a generated dataset: written last, checked before writing again.

A generator (:mod:`.synthetic_dota`, :mod:`.synthetic_coco`) describes its arguments in a
manifest dict. :func:`existing_dataset` says whether ``out_dir`` already holds that dataset
(so nothing is rewritten), and refuses a directory holding anything else rather than mixing
two datasets; :func:`write_manifest` marks the dataset complete.
"""

import json
import os
import os.path as osp

MANIFEST = 'manifest.json'


def existing_dataset(out_dir: str, manifest: dict) -> bool:
    """True if ``out_dir`` holds the dataset ``manifest`` describes; False if it is absent or empty.

    Raises:
        FileExistsError: ``out_dir`` holds a generated dataset with other settings, or other files.
    """
    path = osp.join(out_dir, MANIFEST)
    if osp.exists(path):
        with open(path) as f:
            existing = json.load(f)
        if existing == manifest:
            return True
        raise FileExistsError(
            f'{out_dir} holds a synthetic dataset made with other settings '
            f'({existing}); choose another directory or remove it'
        )
    if osp.isdir(out_dir) and os.listdir(out_dir):
        raise FileExistsError(f'{out_dir} exists and is not a synthetic dataset directory')
    return False


def write_manifest(out_dir: str, manifest: dict) -> None:
    """Write ``manifest.json`` (after every file of the dataset)."""
    with open(osp.join(out_dir, MANIFEST), 'w') as f:
        json.dump(manifest, f, indent=2)
