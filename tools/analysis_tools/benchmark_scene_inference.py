"""Scene inference: memory at two scene sizes, the cost of empty tiles, throughput vs the model.

    python tools/analysis_tools/benchmark_scene_inference.py [CONFIG] [--sizes 20000 40000] \
        [--valid 2048] [--patch-size 1024] [--overlap 200] [--throughput-side 3072] [--work-dir DIR]

Random weights (the config's model, no checkpoint); every figure is measured in this run.

1. Memory: for each size S, a sparse S x S 3-band uint8 GeoTIFF (nodata 0) whose only written
   data is a ``--valid`` x ``--valid`` block of textured content; ``inference_scene`` runs on it
   in a fresh process, which reports its peak resident memory (``ru_maxrss``). The ratio of the
   two peaks shows whether memory grows with the scene.
2. Empty tiles: seconds per tile of ``tile_is_empty`` on the empty tiles of the largest scene
   vs seconds per tile of the model (the valid tiles), from the same process.
3. Throughput: a fully valid ``--throughput-side`` scene: the model alone on its tiles
   (patches already in memory, ``PatchPredictor``) vs the whole path (reading, 8-bit scaling,
   the model, merging, writing the GeoPackage), alternating twice; tiles/s and the ratio.
"""

import argparse
import json
import os
import os.path as osp
import resource
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

DEFAULT_CONFIG = 'configs/rotated_yolox/rotated_yolox_s_300e_dota_le90.py'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', nargs='?', default=DEFAULT_CONFIG)
    parser.add_argument('--sizes', type=int, nargs=2, default=[20000, 40000])
    parser.add_argument('--valid', type=int, default=2048, help='side of the valid block')
    parser.add_argument('--patch-size', type=int, default=1024)
    parser.add_argument('--overlap', type=int, default=200)
    parser.add_argument('--batch-size', type=int, default=2)
    parser.add_argument('--throughput-side', type=int, default=3072)
    parser.add_argument('--work-dir', default=None)
    parser.add_argument('--child', default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def textured(h: int, w: int, seed: int = 0):
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    field = rng.integers(1, 256, (h // 32 + 2, w // 32 + 2, 3)).astype(np.float32)
    img = cv2.resize(field, (w + 64, h + 64), interpolation=cv2.INTER_CUBIC)[
        32 : 32 + h, 32 : 32 + w
    ]
    return np.clip(img, 1, 255).astype(np.uint8)  # 0 is nodata


def write_sparse_scene(path: str, size: int, valid: int) -> str:
    """A sparse tiled GeoTIFF: only a ``valid`` block at (size / 3, size / 3) is written."""
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    profile = dict(
        driver='GTiff',
        width=size,
        height=size,
        count=3,
        dtype='uint8',
        nodata=0,
        crs='EPSG:32633',
        transform=from_origin(500000, 4000000, 0.5, 0.5),
        tiled=True,
        blockxsize=512,
        blockysize=512,
        compress='deflate',
        SPARSE_OK=True,
        BIGTIFF='IF_SAFER',
    )
    with rasterio.open(path, 'w', **profile) as ds:
        block = textured(valid, valid).transpose(2, 0, 1)
        at = size // 3
        ds.write(np.ascontiguousarray(block), window=Window(at, at, valid, valid))
    return path


def write_full_scene(path: str, side: int) -> str:
    import rasterio
    from rasterio.transform import from_origin

    data = textured(side, side, seed=1).transpose(2, 0, 1).copy()
    with rasterio.open(
        path,
        'w',
        driver='GTiff',
        width=side,
        height=side,
        count=3,
        dtype='uint8',
        crs='EPSG:32633',
        transform=from_origin(500000, 4000000, 0.5, 0.5),
        tiled=True,
        blockxsize=512,
        blockysize=512,
    ) as ds:
        ds.write(data)
    return path


def _model(config: str):
    from ai4rs.apis import init_detector
    from ai4rs.utils.cli import warnings_only

    with warnings_only():  # no per-parameter report of the random initialisation
        return init_detector(config, None, device='cpu')


def child_memory(args, scene: str) -> dict:
    """Run in a fresh process: inference_scene on ``scene``; peak RSS and tile timings."""
    from ai4rs.apis import scene_inference
    from ai4rs.geo.scene_reader import GeoScene

    model = _model(args.config)
    empty_seconds, empty_tiles = 0.0, 0
    original_empty = GeoScene.tile_is_empty

    def timed_empty(self, window):
        nonlocal empty_seconds, empty_tiles
        start = time.perf_counter()
        out = original_empty(self, window)
        if out:
            empty_seconds += time.perf_counter() - start
            empty_tiles += 1
        return out

    model_seconds, model_tiles = 0.0, 0
    original_call = scene_inference.PatchPredictor.__call__

    def timed_call(self, patches, first_id=0):
        nonlocal model_seconds, model_tiles
        start = time.perf_counter()
        out = original_call(self, patches, first_id)
        model_seconds += time.perf_counter() - start
        model_tiles += len(patches)
        return out

    GeoScene.tile_is_empty = timed_empty
    scene_inference.PatchPredictor.__call__ = timed_call
    start = time.perf_counter()
    result = scene_inference.inference_scene(
        model,
        scene,
        patch_size=args.patch_size,
        overlap=args.overlap,
        batch_size=args.batch_size,
        progress=False,
    )
    total = time.perf_counter() - start
    return dict(
        peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        tiles=result.tiles,
        skipped=result.tiles_skipped,
        empty_s_per_tile=empty_seconds / max(empty_tiles, 1),
        model_s_per_tile=model_seconds / max(model_tiles, 1),
        seconds=total,
    )


def throughput(args, scene: str, out_dir: str) -> dict:
    """Model alone vs the whole path on a fully valid scene, alternating twice."""
    from ai4rs.apis.scene_inference import (
        inference_scene,
        pipeline_pad_value,
        scene_tiles,
        write_scene_detections,
    )
    from ai4rs.apis.sliced_inference import PatchPredictor
    from ai4rs.datasets.image_io import config_to_uint8_rule
    from ai4rs.geo.scene_reader import GeoScene

    model = _model(args.config)
    with GeoScene(scene, to_uint8=config_to_uint8_rule(model.cfg)) as geo:
        tiles = scene_tiles(geo.width, geo.height, args.patch_size, args.overlap)
        fill = pipeline_pad_value(model.cfg)
        patches = [geo.read_tile(t.window, fill_value=fill)[0] for t in tiles]
    predictor = PatchPredictor(model)
    model_only, whole = [], []
    for rep in range(2):
        start = time.perf_counter()
        for i in range(0, len(patches), args.batch_size):
            predictor(patches[i : i + args.batch_size], first_id=i)
        model_only.append(time.perf_counter() - start)

        start = time.perf_counter()
        with GeoScene(scene, to_uint8=config_to_uint8_rule(model.cfg)) as geo:
            result = inference_scene(
                model,
                geo,
                patch_size=args.patch_size,
                overlap=args.overlap,
                batch_size=args.batch_size,
                progress=False,
            )
            write_scene_detections(
                result,
                osp.join(out_dir, f'throughput{rep}.gpkg'),
                model.dataset_meta.get('classes') or [str(i) for i in range(1000)],
                transform=geo.transform,
                crs=geo.crs,
                overwrite=True,
            )
        whole.append(time.perf_counter() - start)
    return dict(tiles=len(tiles), model_only=model_only, whole=whole)


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        kind, scene = args.child.split(':', 1)
        out = child_memory(args, scene) if kind == 'memory' else None
        print('RESULT ' + json.dumps(out))
        return
    work = args.work_dir or tempfile.mkdtemp(prefix='bench_scene_')
    os.makedirs(work, exist_ok=True)
    rows = []
    for size in args.sizes:
        scene = write_sparse_scene(osp.join(work, f'sparse_{size}.tif'), size, args.valid)
        proc = subprocess.run(
            [sys.executable, osp.abspath(__file__), args.config, '--child', f'memory:{scene}']
            + ['--patch-size', str(args.patch_size), '--overlap', str(args.overlap)]
            + ['--batch-size', str(args.batch_size)],
            capture_output=True,
            text=True,
        )
        line = [x for x in proc.stdout.splitlines() if x.startswith('RESULT ')]
        if proc.returncode or not line:
            raise SystemExit(
                f'memory run of {scene} failed:\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}'
            )
        rows.append((size, json.loads(line[0][7:])))
        os.remove(scene)

    print(
        f'config: {args.config} (random weights), patch {args.patch_size}, overlap {args.overlap}'
    )
    print('| scene side | tiles | empty tiles skipped | peak RSS (MiB) | seconds |')
    print('|---:|---:|---:|---:|---:|')
    for size, r in rows:
        rss, sec = r['peak_rss_mib'], r['seconds']
        print(f'| {size} | {r["tiles"]} | {r["skipped"]} | {rss:.0f} | {sec:.1f} |')
    (s1, r1), (s2, r2) = rows
    print(f'peak RSS {s2} / {s1}: {r2["peak_rss_mib"] / r1["peak_rss_mib"]:.3f}')
    share = r2['empty_s_per_tile'] / r2['model_s_per_tile']
    print(
        f'empty tile {r2["empty_s_per_tile"] * 1000:.2f} ms vs model tile '
        f'{r2["model_s_per_tile"] * 1000:.0f} ms: {share * 100:.2f} %'
    )

    full = write_full_scene(osp.join(work, 'full.tif'), args.throughput_side)
    t = throughput(args, full, work)
    model_rate = t['tiles'] / min(t['model_only'])
    whole_rate = t['tiles'] / min(t['whole'])
    print(
        f'throughput on a {args.throughput_side}-px valid scene ({t["tiles"]} tiles, best of 2): '
        f'model alone {model_rate:.3f} tiles/s, whole path {whole_rate:.3f} tiles/s, '
        f'ratio {whole_rate / model_rate:.3f}'
    )
    print(f'  runs (s): model alone {t["model_only"]}, whole path {t["whole"]}')


if __name__ == '__main__':
    main()
