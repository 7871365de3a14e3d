"""Whole-scene inference: a georeferenced raster read tile by tile, detections in scene pixels.

The scene (any GDAL raster: GeoTIFF, COG, PNG...) is never loaded whole: it is cut into
overlapping square tiles (:func:`scene_tiles`), tiles that hold no valid pixel are skipped
without reading their bands or running the model, the others are read window by window
(:class:`ai4rs.geo.scene_reader.GeoScene`: band selection, nodata filled with the value the
model saw as padding, 8 bits by scene-wide statistics), run through the model in batches
(:class:`ai4rs.apis.sliced_inference.PatchPredictor`, the path of sliced inference), moved to
scene pixels and merged across tile borders by the class-aware (rotated) NMS of
:func:`ai4rs.apis.sliced_inference.merge_detections`.

A run can be resumed: with ``parts_dir``, each batch's per-tile detections are saved there
(atomically) as it finishes, with a manifest of the run's settings; the same call started
again loads them and runs only the tiles not done. With ``world_size > 1`` (torchrun), rank
``r`` runs the tiles ``i`` with ``i % world_size == r`` and the detections are gathered on
every rank before the merge.
"""

import hashlib
import json
import os
import os.path as osp
import sys
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from mmengine.utils import ProgressBar

from ai4rs.structures import DetDataSample
from ai4rs.structures.bbox import BaseBoxes, HorizontalBoxes, QuadriBoxes, RotatedBoxes

from .sliced_inference import PatchPredictor, merge_detections, patch_boxes_to_image

_BOX_TYPES = {cls.__name__: cls for cls in (RotatedBoxes, HorizontalBoxes, QuadriBoxes)}


@dataclass(frozen=True)
class SceneTile:
    """One tile of a scene.

    Attributes:
        index (int): position in the scene's tile list (stable for the same settings).
        window (tuple): ``(x1, y1, x2, y2)`` in scene pixels; may run past the right / bottom
            edge (the outside is padding).
        scale (float): network pixels per scene pixel (the run's ratio; the window is
            ``patch_size / ratio`` scene pixels a side, resized to ``patch_size``).
    """

    index: int
    window: tuple[int, int, int, int]
    scale: float


def scene_tiles(
    width: int,
    height: int,
    patch_size: int = 1024,
    overlap: int = 200,
    ratios=(1.0,),
) -> list[SceneTile]:
    """The tiles of a ``width`` x ``height`` scene.

    For each ratio ``r`` the scene is covered by windows of ``S = round(patch_size / r)``
    scene pixels whose neighbours overlap by ``round(overlap / r)`` pixels (the last window
    of a row or column is moved back to the border; a scene smaller than a window gets one,
    padded); each window is resized to ``patch_size`` network pixels (``r = 1``: no resize).

    Args:
        width, height (int): scene size in pixels (>= 1).
        patch_size (int): network input size of a tile.
        overlap (int): overlap of neighbouring tiles in network pixels, ``0 <= overlap <
            patch_size``.
        ratios (Sequence[float]): network pixels per scene pixel; ``(1.0, 0.5)`` also
            runs the scene at half resolution (large objects).

    Returns:
        list[SceneTile]: ordered by ratio, then column-major as
        :func:`ai4rs.datasets.sliding_windows.get_sliding_windows`.
    """
    from ai4rs.geo.scene_reader import scene_windows

    if width < 1 or height < 1:
        raise ValueError(f'scene size must be at least 1 x 1, got {width} x {height}')
    if not 0 <= overlap < patch_size:
        raise ValueError(f'overlap must be in [0, patch_size), got {overlap} for {patch_size}')
    if not ratios or min(ratios) <= 0:
        raise ValueError(f'ratios must be positive, got {ratios}')
    tiles = []
    for ratio in ratios:
        size = max(1, round(patch_size / ratio))
        gap = min(round(overlap / ratio), size - 1)
        for window in scene_windows(width, height, size, gap):
            tiles.append(SceneTile(len(tiles), tuple(int(v) for v in window), patch_size / size))
    return tiles


def pipeline_pad_value(cfg, default=114) -> tuple[int, int, int]:
    """The image padding value of the config's test pipeline (``Pad`` / ``LetterResize``
    ``pad_val``), what the model saw at the borders of its inputs; ``default`` otherwise."""
    pipeline = cfg.get('test_dataloader', {}).get('dataset', {}).get('pipeline') or []
    for step in pipeline:
        pad = step.get('pad_val') if hasattr(step, 'get') else None
        if pad is None:
            continue
        value = pad.get('img', default) if hasattr(pad, 'get') else pad
        if isinstance(value, (int, float)):
            return (int(value),) * 3
        return tuple(int(v) for v in value)
    return (int(default),) * 3


class _Parts:
    """Per-tile detections saved as a run goes, so that a killed run can resume.

    ``root/manifest.json`` holds the settings; each finished batch of rank ``r`` is one
    ``rank{r}_{first tile:07d}.pt`` (written to a temporary name, then renamed), holding for
    each of its tiles the index and the detections in scene pixels.
    """

    def __init__(self, root: str, manifest: dict, rank: int):
        self.root, self.rank = root, rank
        os.makedirs(root, exist_ok=True)
        path = osp.join(root, 'manifest.json')
        if osp.isfile(path):
            with open(path) as f:
                old = json.load(f)
            changed = sorted(k for k in set(old) | set(manifest) if old.get(k) != manifest.get(k))
            if changed:
                raise ValueError(
                    f'{root} holds the tiles of a run with other settings ({", ".join(changed)} '
                    'differ): delete that folder to start over, or run with the same settings'
                )
        elif rank == 0:
            tmp = path + f'.tmp{os.getpid()}'
            with open(tmp, 'w') as f:
                json.dump(manifest, f, indent=1)
            os.replace(tmp, path)

    def load(self) -> dict:
        """{tile index: (box type name, boxes (n, d), scores (n,), labels (n,))} of every
        finished batch of every rank."""
        done = {}
        for name in sorted(os.listdir(self.root)):
            if not (name.startswith('rank') and name.endswith('.pt')):
                continue
            try:
                part = torch.load(osp.join(self.root, name), weights_only=True)
            except Exception as e:  # a part is renamed into place only once complete
                raise ValueError(f'{osp.join(self.root, name)} is not a readable part: {e}') from e
            for index, boxes, scores, labels in zip(
                part['tiles'], part['boxes'], part['scores'], part['labels']
            ):
                done[int(index)] = (part['box_type'], boxes, scores, labels)
        return done

    def save(self, records: list) -> None:
        """``records``: [(tile index, box object, scores, labels)] of one batch."""
        if not records:
            return
        name = f'rank{self.rank}_{records[0][0]:07d}.pt'
        path = osp.join(self.root, name)
        part = dict(
            box_type=type(records[0][1]).__name__,
            tiles=[r[0] for r in records],
            boxes=[r[1].tensor.detach().cpu() for r in records],
            scores=[r[2].detach().cpu() for r in records],
            labels=[r[3].detach().cpu() for r in records],
        )
        torch.save(part, path + '.tmp')
        os.replace(path + '.tmp', path)


def _file_signature(path: str | None) -> str | None:
    if not path or not osp.isfile(path):
        return path
    st = os.stat(path)
    return f'{osp.abspath(path)}:{st.st_size}:{int(st.st_mtime)}'


def inference_scene(
    model,
    scene,
    *,
    texts=None,
    bands=None,
    patch_size: int = 1024,
    overlap: int = 200,
    ratios=(1.0,),
    batch_size: int = 4,
    merge_iou_thr: float = 0.1,
    fill_value=None,
    parts_dir: str | None = None,
    progress: bool | None = None,
    rank: int = 0,
    world_size: int = 1,
) -> DetDataSample:
    """Detect objects in a whole scene.

    Args:
        model (nn.Module): from :func:`ai4rs.apis.init_detector` (any family; the score
            threshold is the head's ``test_cfg.score_thr``).
        scene (str | GeoScene): a raster file, or an open
            :class:`ai4rs.geo.scene_reader.GeoScene`.
        texts (list[str], optional): the vocabulary of an open-vocabulary model.
        bands (Sequence[int], optional): the file's bands shown as red, green, blue
            (1-based); default: by the file's colour interpretation (see ``GeoScene``).
        patch_size, overlap, ratios: the tiles (:func:`scene_tiles`).
        batch_size (int): tiles per forward pass.
        merge_iou_thr (float): IoU threshold of the merge across tile borders.
        fill_value (tuple, optional): BGR value of nodata and outside pixels; default the
            test pipeline's padding value (:func:`pipeline_pad_value`).
        parts_dir (str, optional): folder for the per-tile results of a resumable run.
        progress (bool, optional): a progress bar (tiles/s, ETA); default when stdout is a
            terminal.
        rank, world_size (int): this process's share of the tiles (torchrun).

    Returns:
        DetDataSample: ``pred_instances`` (``bboxes`` in scene pixels, of the model's box
        type; ``scores``; ``labels``), ``ori_shape`` (height, width), ``texts`` (an
        open-vocabulary model), and ``tiles`` / ``tiles_skipped`` / ``tiles_resumed``
        (counts over the whole scene).
    """
    from ai4rs.datasets.image_io import config_to_uint8_rule
    from ai4rs.geo.scene_reader import GeoScene

    if isinstance(scene, (str, os.PathLike)):
        with GeoScene(str(scene), bands=bands, to_uint8=config_to_uint8_rule(model.cfg)) as geo:
            return inference_scene(
                model,
                geo,
                texts=texts,
                patch_size=patch_size,
                overlap=overlap,
                ratios=ratios,
                batch_size=batch_size,
                merge_iou_thr=merge_iou_thr,
                fill_value=fill_value,
                parts_dir=parts_dir,
                progress=progress,
                rank=rank,
                world_size=world_size,
            )
    if batch_size < 1:
        raise ValueError(f'batch_size must be at least 1, got {batch_size}')
    if not 0 <= rank < world_size:
        raise ValueError(f'rank {rank} is not in [0, world_size = {world_size})')
    predictor = PatchPredictor(model, texts)
    fill = tuple(fill_value) if fill_value is not None else pipeline_pad_value(model.cfg)
    tiles = scene_tiles(scene.width, scene.height, patch_size, overlap, ratios)

    done = {}
    parts = None
    if parts_dir is not None:
        manifest = dict(
            scene=_file_signature(getattr(scene, 'path', None)),
            size=[scene.width, scene.height],
            bands=list(scene.bands),
            patch_size=patch_size,
            overlap=overlap,
            ratios=[float(r) for r in ratios],
            texts=predictor.vocab,
            fill_value=list(fill),
            test_cfg=_test_cfg_digest(model),
            weights=_weights_digest(model),
        )
        parts = _Parts(parts_dir, manifest, rank)
        done = parts.load()

    mine = [t for t in tiles if t.index % world_size == rank]
    todo = [t for t in mine if t.index not in done]
    if progress is None:
        progress = sys.stdout.isatty()
    bar = ProgressBar(len(todo)) if progress and todo else None
    # detections per tile index: (box object in scene pixels, scores, labels)
    results = {}
    for index, (type_name, boxes, scores, labels) in done.items():
        if index % world_size == rank:
            results[index] = (_BOX_TYPES[type_name](boxes), scores, labels)
    skipped = 0
    batch: list[SceneTile] = []

    def run_batch():
        patches = [_read_patch(scene, tile, patch_size, fill) for tile in batch]
        records = []
        for tile, pred in zip(batch, predictor(patches, first_id=batch[0].index)):
            origin = (tile.window[0] * tile.scale, tile.window[1] * tile.scale)
            boxes = patch_boxes_to_image(pred.bboxes, origin, (1 / tile.scale, 1 / tile.scale))
            records.append((tile.index, boxes.cpu(), pred.scores.cpu(), pred.labels.cpu()))
        for index, boxes, scores, labels in records:
            results[index] = (boxes, scores, labels)
        if parts is not None:
            parts.save(records)
        if bar is not None:
            bar.update(len(batch))
        batch.clear()

    for tile in todo:
        # (not saved as a part: a resumed run checks it again, as cheaply)
        if scene.tile_is_empty(tile.window):
            skipped += 1
            results[tile.index] = None
            if bar is not None:
                bar.update(1)
            continue
        batch.append(tile)
        if len(batch) == batch_size:
            run_batch()
    if batch:
        run_batch()

    counts = torch.tensor([skipped, len(mine) - len(todo)])
    if world_size > 1:
        from mmengine.dist import all_gather_object, all_reduce

        mine_results = {k: _to_record(v) for k, v in results.items()}
        gathered = all_gather_object(mine_results)
        results = {}
        for part in gathered:
            for k, v in part.items():
                results[k] = _from_record(v)
        all_reduce(counts)
    missing = [t.index for t in tiles if t.index not in results]
    if missing:
        raise RuntimeError(f'scene inference: no result for tiles {missing[:10]}...')
    found = [results[i] for i in sorted(results) if results[i] is not None]
    found = [r for r in found if len(r[1])]
    if not found:  # no detection anywhere: an empty result of the model's box type
        found = [(_empty_boxes(model), torch.zeros(0), torch.zeros(0, dtype=torch.long))]
    out = merge_detections(
        [r[0] for r in found],
        [r[1] for r in found],
        [r[2] for r in found],
        merge_iou_thr,
        (scene.height, scene.width),
        predictor.vocab,
    )
    out.set_metainfo(
        dict(
            tiles=len(tiles),
            tiles_skipped=int(counts[0]),
            tiles_resumed=int(counts[1]),
        )
    )
    return out


def _read_patch(scene, tile: SceneTile, patch_size: int, fill) -> np.ndarray:
    """The tile's window as a BGR patch of ``patch_size`` (resized when its scale is not 1)."""
    img, _ = scene.read_tile(tile.window, fill_value=fill)
    if img.shape[0] != patch_size or img.shape[1] != patch_size:
        img = cv2.resize(img, (patch_size, patch_size), interpolation=cv2.INTER_LINEAR)
    return img


def _empty_boxes(model) -> BaseBoxes:
    """No boxes, of the model's box type."""
    box_type = model.box_type
    return box_type(torch.zeros(0, box_type.box_dim))


def _to_record(value):
    if value is None:
        return None
    boxes, scores, labels = value
    return (type(boxes).__name__, boxes.tensor, scores, labels)


def _from_record(record):
    if record is None:
        return None
    name, boxes, scores, labels = record
    return _BOX_TYPES[name](boxes), scores, labels


def _test_cfg_digest(model) -> str:
    cfg = getattr(getattr(model, 'bbox_head', None), 'test_cfg', None)
    return json.dumps(cfg, sort_keys=True, default=str) if cfg is not None else ''


def _weights_digest(model) -> str:
    """A digest of the model's weights: resuming with other weights is refused."""
    if not hasattr(model, 'state_dict'):  # an exported graph (OnnxDetector)
        return str(getattr(model, 'digest', type(model).__name__))
    h = hashlib.sha1()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        t = tensor.detach().cpu().contiguous()
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()


#: box class -> the box type name of the output layers' pixel-box fields
BOX_TYPE_NAMES = {RotatedBoxes: 'rbox', HorizontalBoxes: 'hbox', QuadriBoxes: 'qbox'}


def write_scene_detections(
    result: DetDataSample,
    out: str,
    class_names,
    *,
    transform=None,
    crs=None,
    overwrite: bool = False,
) -> str:
    """Write a scene's detections as a map layer (:func:`ai4rs.geo.vector_writer.write_detections`).

    Args:
        result (DetDataSample): from :func:`inference_scene` (boxes in scene pixels).
        out (str): ``.gpkg`` (GeoPackage, in ``crs``) or ``.geojson`` / ``.json`` (RFC 7946,
            WGS84 longitude / latitude).
        class_names (Sequence[str]): the names the labels index (the texts of an
            open-vocabulary model, else the model's classes).
        transform (Affine, optional): the scene's pixel -> map transform; None (a scene
            without georeferencing): pixel coordinates (GeoPackage only, with a warning).
        crs: the scene's CRS, or None.
        overwrite (bool): replace an existing ``out``.

    Returns:
        str: ``out``.
    """
    from affine import Affine

    from ai4rs.geo.vector_writer import detection_polygons, write_detections

    pred = result.pred_instances
    boxes = pred.bboxes
    if crs is None:
        transform = None
    polygons = detection_polygons(boxes, transform if transform is not None else Affine.identity())
    labels = pred.labels.tolist()
    if labels and max(labels) >= len(class_names):
        raise ValueError(
            f'label {max(labels)} has no name: {len(class_names)} class names {list(class_names)}'
        )
    return write_detections(
        out,
        polygons,
        [class_names[i] for i in labels],
        pred.scores.detach().cpu().numpy(),
        boxes,
        crs,
        box_type=BOX_TYPE_NAMES[type(boxes)],
        overwrite=overwrite,
    )


__all__ = [
    'SceneTile',
    'scene_tiles',
    'pipeline_pad_value',
    'inference_scene',
    'write_scene_detections',
]
