"""Detect objects in whole georeferenced scenes and write them as map layers.

    python tools/geo_inference.py SCENES CONFIG CHECKPOINT --out OUT [--texts "ship,storage tank"]
        [--bands 3,2,1] [--patch-size 1024] [--overlap 200] [--ratios 1.0] [--batch-size 4]
        [--score-thr 0.3] [--merge-iou-thr 0.1] [--device cpu] [--task1-dir DIR] [--overwrite]
        [--launcher {none,pytorch}]

SCENES: a raster file (GeoTIFF, COG, or anything GDAL reads), a folder (its .tif / .tiff /
.vrt / .jp2 / .img / .png files), a glob pattern in quotes, or a .txt file listing one raster per
line. OUT: for one scene, the layer file (.gpkg: GeoPackage in the scene's CRS; .geojson: RFC
7946, WGS84 longitude / latitude); for several, a folder that gets SCENE_STEM.gpkg per scene
(``--format geojson`` for GeoJSON). Each detection is a polygon (its box's corners through the
scene's affine transform) with ``label``, ``score`` and the pixel box. ``--task1-dir DIR`` also
writes DOTA Task1 text files in scene pixels, DIR/SCENE_STEM/Task1_{class}.txt.

A long run can be killed and started again with the same command: finished tiles are kept in
OUT.parts/ (removed once the layer is written). With torchrun (``--launcher pytorch``) the
tiles of each scene are shared out by rank and rank 0 writes the layers:

    torchrun --nproc-per-node 2 tools/geo_inference.py SCENES CONFIG CKPT --out OUT \
        --launcher pytorch
"""

import argparse
import glob
import os
import os.path as osp
import shutil
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

RASTER_SUFFIXES = ('.tif', '.tiff', '.vrt', '.jp2', '.img', '.png')
LAYER_SUFFIXES = ('.gpkg', '.geojson', '.json')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('scenes', help='raster file, folder, glob pattern or .txt list of rasters')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--out', required=True, help='layer file (one scene) or folder')
    parser.add_argument('--format', choices=('gpkg', 'geojson'), default='gpkg')
    parser.add_argument('--texts', default=None, help='vocabulary: "a,b,c" or .txt / .json')
    parser.add_argument('--bands', default=None, help='bands shown as red,green,blue, e.g. 3,2,1')
    parser.add_argument('--patch-size', type=int, default=1024)
    parser.add_argument('--overlap', type=int, default=200)
    parser.add_argument('--ratios', type=float, nargs='+', default=[1.0])
    parser.add_argument('--batch-size', type=int, default=4)
    parser.add_argument('--score-thr', type=float, default=None, help="default: the config's")
    parser.add_argument('--merge-iou-thr', type=float, default=0.1)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--task1-dir', default=None, help='also write DOTA Task1 files here')
    parser.add_argument('--overwrite', action='store_true', help='replace existing layers')
    parser.add_argument('--progress', action='store_true', help='a progress bar (tiles/s, ETA)')
    from ai4rs.utils.cli import add_launcher_arguments

    add_launcher_arguments(parser)
    args = parser.parse_args(argv)
    if args.launcher not in ('none', 'pytorch'):
        parser.error(f'--launcher {args.launcher}: scene inference runs with none or pytorch')
    if args.bands is not None:
        try:
            args.bands = [int(b) for b in args.bands.split(',')]
        except ValueError:
            parser.error(f'--bands must be comma-separated band numbers, got {args.bands!r}')
    if args.patch_size < 1 or not 0 <= args.overlap < args.patch_size:
        parser.error('--patch-size must be positive and --overlap in [0, patch size)')
    if args.batch_size < 1 or min(args.ratios) <= 0:
        parser.error('--batch-size must be at least 1 and --ratios positive')
    try:
        from ai4rs.datasets.class_texts import read_vocabulary

        args.vocabulary = read_vocabulary(args.texts) if args.texts else None
    except (ValueError, FileNotFoundError) as e:
        parser.error(str(e))
    try:
        args.scene_files = find_scenes(args.scenes)
    except FileNotFoundError as e:
        parser.error(str(e))
    try:
        args.layers = layer_paths(args.scene_files, args.out, args.format)
    except ValueError as e:
        parser.error(str(e))
    for path in ('config', 'checkpoint'):
        if not osp.isfile(getattr(args, path)):
            parser.error(f'{path} {getattr(args, path)} does not exist')
    if not args.overwrite:
        existing = [p for p in args.layers if osp.exists(p)]
        if existing:
            parser.error(f'{existing[0]} exists: pass --overwrite to replace it')
    return args


def find_scenes(spec: str) -> list[str]:
    """The raster files named by a file, a folder, a glob pattern or a .txt list."""
    if osp.isdir(spec):
        files = sorted(
            osp.join(spec, f) for f in os.listdir(spec) if f.lower().endswith(RASTER_SUFFIXES)
        )
        if not files:
            raise FileNotFoundError(f'no raster ({", ".join(RASTER_SUFFIXES)}) in folder {spec}')
        return files
    if osp.isfile(spec) and spec.lower().endswith('.txt'):
        base = osp.dirname(osp.abspath(spec))
        files = []
        with open(spec) as f:
            for line_no, line in enumerate(f, 1):
                name = line.strip()
                if not name or name.startswith('#'):
                    continue
                path = name if osp.isabs(name) else osp.join(base, name)
                if not osp.isfile(path):
                    raise FileNotFoundError(f'{spec}, line {line_no}: {name} does not exist')
                files.append(path)
        if not files:
            raise FileNotFoundError(f'{spec} lists no raster')
        return files
    if osp.isfile(spec):
        return [spec]
    files = sorted(glob.glob(spec))
    if not files:
        raise FileNotFoundError(f'{spec} is not a file, a folder or a pattern that matches files')
    return files


def layer_paths(scenes: list[str], out: str, fmt: str) -> list[str]:
    """One output layer per scene: ``out`` itself for one scene named with a layer suffix,
    else ``out/STEM.fmt``."""
    if out.lower().endswith(LAYER_SUFFIXES):
        if len(scenes) > 1:
            raise ValueError(
                f'--out {out} is one layer file but there are {len(scenes)} scenes: give a folder'
            )
        return [out]
    stems = [osp.splitext(osp.basename(s))[0] for s in scenes]
    if len(set(stems)) != len(stems):
        dup = next(s for s in stems if stems.count(s) > 1)
        raise ValueError(f'two scenes are named {dup}: their layers would have the same name')
    return [osp.join(out, f'{stem}.{fmt}') for stem in stems]


def main(argv=None):
    args = parse_args(argv)
    import torch  # noqa: F401  (import order: torch before rasterio's GDAL)

    from ai4rs.apis import init_detector
    from ai4rs.apis.inference import model_vocabulary
    from ai4rs.apis.scene_inference import inference_scene, write_scene_detections
    from ai4rs.geo.scene_reader import GeoScene, SceneReadError
    from ai4rs.utils.checkpoint import CheckpointMismatchError, NotACheckpointError
    from ai4rs.utils.paths import add_project_paths

    add_project_paths()
    rank, world_size = 0, 1
    if args.launcher == 'pytorch':
        import torch.distributed as torch_dist
        from mmengine.dist import get_dist_info, init_dist

        if args.device.startswith('cuda'):
            init_dist('pytorch', backend='nccl')
        else:  # mmengine's 'pytorch' launcher sets a CUDA device: gloo here, by hand
            torch_dist.init_process_group(
                backend='gloo',
                rank=int(os.environ['RANK']),
                world_size=int(os.environ['WORLD_SIZE']),
            )
        rank, world_size = get_dist_info()
    device = args.device
    if args.launcher == 'pytorch' and device.startswith('cuda'):
        device = f'cuda:{int(os.environ.get("LOCAL_RANK", 0))}'
    try:
        model = init_detector(args.config, args.checkpoint, device=device)
        vocab = model_vocabulary(model, args.vocabulary)
    except (CheckpointMismatchError, NotACheckpointError, ValueError) as e:
        sys.exit(f'error: {e}')
    if args.score_thr is not None:
        model.bbox_head.test_cfg['score_thr'] = args.score_thr
    class_names = list(vocab) if vocab is not None else list(model.dataset_meta.get('classes', ()))

    from ai4rs.datasets.image_io import config_to_uint8_rule

    for scene_file, layer in zip(args.scene_files, args.layers):
        start = time.time()
        parts_dir = layer + '.parts'
        if rank == 0:
            os.makedirs(osp.dirname(osp.abspath(layer)), exist_ok=True)
        _barrier(world_size)
        try:  # a file that is not a raster, a band it does not have: one line, nothing written
            scene = GeoScene(scene_file, bands=args.bands, to_uint8=config_to_uint8_rule(model.cfg))
        except (SceneReadError, ValueError) as e:
            sys.exit(f'error: {e}')
        with scene:
            result = inference_scene(
                model,
                scene,
                texts=vocab if args.vocabulary is not None else None,
                patch_size=args.patch_size,
                overlap=args.overlap,
                ratios=args.ratios,
                batch_size=args.batch_size,
                merge_iou_thr=args.merge_iou_thr,
                parts_dir=parts_dir,
                progress=args.progress or None,
                rank=rank,
                world_size=world_size,
            )
            if rank == 0:
                write_scene_detections(
                    result,
                    layer,
                    class_names,
                    transform=scene.transform if scene.georeferenced else None,
                    crs=scene.crs if scene.georeferenced else None,
                    overwrite=args.overwrite,
                )
                if args.task1_dir:
                    _write_task1(args.task1_dir, scene_file, result, class_names)
                shutil.rmtree(parts_dir, ignore_errors=True)
                n = len(result.pred_instances)
                print(
                    f'{scene_file}: {n} detections -> {layer} ({result.tiles} tiles, '
                    f'{result.tiles_skipped} without valid pixels skipped, '
                    f'{result.tiles_resumed} resumed; {time.time() - start:.1f} s)'
                )
        _barrier(world_size)
    if world_size > 1:
        from ai4rs.utils.dist import teardown_distributed

        teardown_distributed()


def _write_task1(out_dir, scene_file, result, class_names):
    from ai4rs.evaluation.functional.dota_results import write_task1
    from ai4rs.structures.bbox import HorizontalBoxes

    pred = result.pred_instances
    if isinstance(pred.bboxes, HorizontalBoxes):
        raise SystemExit('--task1-dir: DOTA Task1 needs rotated boxes; this model predicts hboxes')
    stem = osp.splitext(osp.basename(scene_file))[0]
    out_dir = osp.join(out_dir, stem)
    os.makedirs(out_dir, exist_ok=True)
    write_task1(
        out_dir,
        stem,
        pred.bboxes,
        pred.labels,
        pred.scores,
        class_names,
    )


def _barrier(world_size):
    if world_size > 1:
        from mmengine.dist import barrier

        barrier()


if __name__ == '__main__':
    main()
