"""Annotation converters (ai4rs.datasets.preparation.converters, tools/dataset_converters/)."""

import importlib.util
import json
import os.path as osp

import cv2
import numpy as np
import pytest
import shapely
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from ai4rs.datasets.coco_json import load_coco_json
from ai4rs.datasets.dota import load_dota_labels
from ai4rs.datasets.preparation.converters import (
    ConversionError,
    coco_to_dota,
    dota_to_coco,
    dota_to_yolo_obb,
    json_array_item_lines,
    labelme_to_dota,
    load_class_names,
    mask_pixel_corners,
    yolo_obb_to_dota,
)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CLASSES = ['plane', 'ship', 'small-vehicle']
W, H = 37, 23  # not square: a width / height swap shows


def write_image(folder, stem, w=W, h=H):
    folder.mkdir(exist_ok=True)
    path = folder / f'{stem}.png'
    assert cv2.imwrite(str(path), np.zeros((h, w, 3), np.uint8))
    return path


def write(path, text):
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def corner_set(polygon, ndigits=6):
    """The corners of an 8-value polygon as a set of rounded (x, y) points."""
    pts = np.asarray(polygon, dtype=float).reshape(4, 2)
    return {(round(x, ndigits) + 0.0, round(y, ndigits) + 0.0) for x, y in pts}


def load_script(name):
    spec = importlib.util.spec_from_file_location(
        name, osp.join(REPO, 'tools', 'dataset_converters', f'{name}.py')
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------- YOLO-OBB <-> DOTA

DOTA_TEXT = (
    'imagesource:GoogleEarth\n'
    'gsd:0.5\n'
    '1.5 2.25 30.0 2.25 30.0 20.5 1.5 20.5 plane 0\n'
    '10.123456 3.3 20.987654 7.7 18.1 15.2 8.9 11.0 ship 1\n'
    '-0.2 0.0 37.0 0.0 37.0 23.1 -0.2 23.1 small-vehicle 0\n'  # outside by < 1 %: kept
)


def test_dota_to_yolo_obb_to_dota_round_trip(tmp_path):
    write_image(tmp_path / 'images', 'P1')
    src = write(tmp_path / 'dota' / 'P1.txt', DOTA_TEXT)
    imgs = str(tmp_path / 'images')
    report = dota_to_yolo_obb(str(src.parent), imgs, str(tmp_path / 'yolo'), CLASSES)
    assert (report.files, report.objects, report.skipped) == (1, 3, 0)
    yolo_lines = (tmp_path / 'yolo' / 'P1.txt').read_text().splitlines()
    first = [float(v) for v in yolo_lines[0].split()]
    # by hand: class index 0, x / 37, y / 23
    assert first[0] == 0 and yolo_lines[1].split()[0] == '1'
    np.testing.assert_allclose(first[1:5], [1.5 / 37, 2.25 / 23, 30 / 37, 2.25 / 23], rtol=1e-9)

    report = yolo_obb_to_dota(
        str(tmp_path / 'yolo'), str(tmp_path / 'images'), str(tmp_path / 'back'), CLASSES
    )
    assert (report.files, report.objects, report.skipped) == (1, 3, 0)
    original = load_dota_labels(str(src))
    back = load_dota_labels(str(tmp_path / 'back' / 'P1.txt'))
    assert back.names == original.names
    assert back.difficulties.tolist() == [0, 0, 0]  # YOLO-OBB has no difficulty
    err = np.abs(back.polygons - original.polygons) / np.array([W, H] * 4)
    assert err.max() <= 1e-6


def test_yolo_obb_malformed_lines_are_reported_with_file_and_line(tmp_path):
    write_image(tmp_path / 'images', 'a')
    text = (
        '0 0.1 0.1 0.9 0.1 0.9 0.9 0.1 0.9\n'  # good
        '0 0.1 0.1 0.9 0.1 0.9 0.9 0.1\n'  # 8 fields
        'x 0.1 0.1 0.9 0.1 0.9 0.9 0.1 0.9\n'  # class not an integer
        '3 0.1 0.1 0.9 0.1 0.9 0.9 0.1 0.9\n'  # class index out of range
        '\n'
        '1 0.1 0.1 1.5 0.1 0.9 0.9 0.1 0.9\n'  # outside [0, 1]
        '1 0.1 nan 0.9 0.1 0.9 0.9 0.1 0.9\n'  # not finite
        '2 0.5 0.5 1.005 0.5 1.005 1.0 0.5 1.0\n'  # within the tolerance: kept
        '2 0.5 0.5 0.6 0.6 0.7 0.7 0.8 0.8\n'  # collinear: no area
    )
    lab = write(tmp_path / 'yolo' / 'a.txt', text)
    write(tmp_path / 'yolo' / 'orphan.txt', '0 0.1 0.1 0.9 0.1 0.9 0.9 0.1 0.9\n')
    write_image(tmp_path / 'images', 'binary')
    (tmp_path / 'yolo' / 'binary.txt').write_bytes(b'\x89PNG\xff\xfe')
    report = yolo_obb_to_dota(
        str(tmp_path / 'yolo'), str(tmp_path / 'images'), str(tmp_path / 'out'), CLASSES
    )
    assert (report.files, report.objects, report.skipped) == (1, 2, 8)
    assert [m.split(': ')[0] for m in report.messages] == [
        f'{lab}:2',
        f'{lab}:3',
        f'{lab}:4',
        f'{lab}:6',
        f'{lab}:7',
        f'{lab}:9',
        str(tmp_path / 'yolo' / 'binary.txt'),
        str(tmp_path / 'yolo' / 'orphan.txt'),
    ]
    assert '9 fields' in report.messages[0] and 'not in 0..2' in report.messages[2]
    assert 'corner 1.5 is outside [0, 1]' in report.messages[3]
    assert 'no area' in report.messages[5] and 'not a UTF-8 text' in report.messages[6]
    assert report.summary() == 'converted 1 files, 2 objects; skipped 8 entries (see messages)'
    out = load_dota_labels(str(tmp_path / 'out' / 'a.txt'))
    assert out.names == ['plane', 'small-vehicle']
    np.testing.assert_allclose(out.polygons[1][:4], [18.5, 11.5, 37.185, 11.5])

    (tmp_path / 'yolo' / 'binary.txt').unlink()
    with pytest.raises(ConversionError, match=f'{lab}:2: expected'):
        yolo_obb_to_dota(
            str(tmp_path / 'yolo'),
            str(tmp_path / 'images'),
            str(tmp_path / 'strict'),
            CLASSES,
            strict=True,
        )


def test_dota_to_yolo_obb_reports_bad_lines_unknown_classes_and_far_corners(tmp_path):
    write_image(tmp_path / 'images', 'b')
    lab = write(
        tmp_path / 'dota' / 'b.txt',
        '1 1 5 1 5 5 1 5 plane 0\n'
        '1 1 5 1 5 5 1 5\n'  # no class
        '1 1 5 1 5 5 1 5 tree 0\n'  # unknown class
        '1 1 50 1 50 5 1 5 ship 0\n'  # outside the 37-wide image
        '1 1 1 1 1 1 1 1 ship 0\n',  # no area
    )
    report = dota_to_yolo_obb(
        str(lab.parent), str(tmp_path / 'images'), str(tmp_path / 'yolo'), CLASSES
    )
    assert (report.files, report.objects, report.skipped) == (1, 1, 4)
    where = [m.split(': ')[0] for m in report.messages]
    assert where == [f'{lab}:2', f'{lab}:3', f'{lab}:4', f'{lab}:5']
    assert "'tree' is not in the class list" in report.messages[1]
    assert 'corner 50.0 is outside the 37x23 image' in report.messages[2]


def test_load_class_names_from_data_yaml_text_file_and_list(tmp_path):
    write(tmp_path / 'data.yaml', 'path: x\nnames:\n  0: plane\n  1: ship\n')
    write(tmp_path / 'list.yaml', 'names: [plane, ship]\n')
    write(tmp_path / 'classes.txt', 'plane\n\nship\n')
    for spec in ('data.yaml', 'list.yaml', 'classes.txt'):
        assert load_class_names([str(tmp_path / spec)]) == ['plane', 'ship']
    assert load_class_names(['plane,ship']) == load_class_names(['plane', 'ship'])
    write(tmp_path / 'gap.yaml', 'names:\n  0: plane\n  2: ship\n')
    with pytest.raises(ValueError, match='gap.yaml: names: keys must be 0..1'):
        load_class_names([str(tmp_path / 'gap.yaml')])
    with pytest.raises(ValueError, match='repeated'):
        load_class_names(['plane', 'plane'])
    with pytest.raises(FileNotFoundError, match='missing.yaml'):
        load_class_names([str(tmp_path / 'missing.yaml')])  # not a class named 'missing.yaml'


# --------------------------------------------------------------------------- labelme


def test_labelme_shapes_to_dota_corners_by_hand(tmp_path):
    shapes = [
        dict(label='plane', shape_type='polygon', points=[[1, 1], [9, 2], [8, 7], [2, 6]]),
        # a 45-degree rectangle with an extra point on an edge: its min-area rectangle
        dict(
            label='ship',
            shape_type='polygon',
            points=[[2, 0], [3, 1], [4, 2], [2, 4], [0, 2]],
            difficult=True,
        ),
        dict(label='ship', shape_type='rectangle', points=[[5, 6], [1, 2]]),
        dict(label='plane', shape_type='rotation', points=[[3, 0], [6, 3], [3, 6], [0, 3]]),
        dict(label='plane', shape_type='circle', points=[[3, 3], [4, 4]]),
        dict(label='tree', shape_type='rectangle', points=[[0, 0], [1, 1]]),
        dict(label='ship', shape_type='polygon', points=[[0, 0], [1, 1]]),
        dict(label='ship', shape_type='polygon', points=[[0, 0], [1, 1], [2, 2]]),  # no area
    ]
    labelme = dict(shapes=shapes, imagePath='img1.png')
    text = json.dumps(labelme, indent=2)  # as labelme writes it: each shape starts '    {'
    src = write(tmp_path / 'lm' / 'img1.json', text)
    starts = [n for n, line in enumerate(text.splitlines(), start=1) if line == '    {']
    write(tmp_path / 'lm' / 'broken.json', '{"shapes": [')
    paths = [str(tmp_path / 'lm' / 'img1.json'), str(tmp_path / 'lm' / 'broken.json')]
    report = labelme_to_dota(paths, str(tmp_path / 'out'), class_names=CLASSES)
    assert (report.files, report.objects, report.skipped) == (1, 4, 5)
    where = [m.split(': ')[:2] for m in report.messages[:4]]
    assert where == [
        [f'{src}:{starts[4]}', "shapes[4] ('plane')"],
        [f'{src}:{starts[5]}', "shapes[5] ('tree')"],
        [f'{src}:{starts[6]}', "shapes[6] ('ship')"],
        [f'{src}:{starts[7]}', "shapes[7] ('ship')"],
    ]
    assert 'circle' in report.messages[0] and 'not a valid json' in report.messages[4]
    out = load_dota_labels(str(tmp_path / 'out' / 'img1.txt'))
    assert out.names == ['plane', 'ship', 'ship', 'plane']
    assert out.difficulties.tolist() == [0, 1, 0, 0]
    assert out.polygons[0].tolist() == [1, 1, 9, 2, 8, 7, 2, 6]  # 4 points: as they are
    assert corner_set(out.polygons[1]) == corner_set([2, 0, 4, 2, 2, 4, 0, 2])
    # the same area as OpenCV's minimum-area rectangle
    (_, (w, h), _) = cv2.minAreaRect(np.array(shapes[1]['points'], np.float32))
    assert shapely.Polygon(out.polygons[1].reshape(4, 2)).area == pytest.approx(w * h)
    assert out.polygons[2].tolist() == [1, 2, 5, 2, 5, 6, 1, 6]
    assert out.polygons[3].tolist() == [3, 0, 6, 3, 3, 6, 0, 3]


def test_json_array_item_lines_by_hand():
    text = '{"a": {"shapes": [9]},\n "shapes": [\n {"x": [1,\n2]}, {"y": "]"}\n,\n3]}'
    assert json_array_item_lines(text, 'shapes') == [3, 4, 6]
    assert json_array_item_lines(text, 'other') == []
    assert json_array_item_lines('[1, 2]', 'shapes') == []
    assert json_array_item_lines('{"shapes": [1, ', 'shapes') == []


# ------------------------------------------------------------------------- COCO -> DOTA


def runs_fortran_order(mask):
    """Uncompressed COCO RLE counts: run lengths of the column-major pixels, zeros first."""
    flat = mask.flatten(order='F').tolist()
    counts, value, run = [], 0, 0
    for v in flat:
        if v != value:
            counts.append(run)
            value, run = v, 0
        run += 1
    return counts + [run]


def test_coco_polygons_rle_and_boxes_to_min_area_rectangles(tmp_path):
    h, w = 16, 20
    mask = np.zeros((h, w), np.uint8)
    mask[3:5, 2:6] = 1  # pixels x 2..5, y 3..4: the area [2, 6] x [3, 5]
    rle = mask_utils.encode(np.asfortranarray(mask))
    rle['counts'] = rle['counts'].decode('ascii')
    two_parts = [[2, 2, 6, 2, 6, 6, 2, 6], [9, 9, 12, 10, 10, 12]]
    crowd = np.zeros((h, w), np.uint8)
    crowd[8:10, 10:13] = 1  # the area [10, 13] x [8, 10]
    uncompressed = dict(size=[h, w], counts=runs_fortran_order(crowd))
    anns = [
        dict(id=1, image_id=1, category_id=1, bbox=[0, 0, 1, 1], segmentation=two_parts),
        dict(id=2, image_id=1, category_id=2, bbox=[2, 3, 4, 2], segmentation=rle, iscrowd=1),
        dict(id=3, image_id=1, category_id=1, bbox=[1, 2, 3, 4]),  # no segmentation
        dict(id=4, image_id=1, category_id=1, bbox=[1, 2, 3, 4], segmentation=[[1, 2, 3]]),
        dict(id=5, image_id=1, category_id=2, bbox=[0, 0, 5, 5], segmentation=[[0, 0, 5, 0, 9, 0]]),
        dict(id=6, image_id=1, category_id=1, bbox=[0, 0, 1, 1], segmentation=uncompressed),
    ]
    coco = dict(
        images=[
            dict(id=1, file_name='sub/a.jpg', width=w, height=h),
            dict(id=2, file_name='b.jpg', width=w, height=h),
        ],
        annotations=anns,
        categories=[dict(id=1, name='plane'), dict(id=2, name='small car')],
    )
    src = write(tmp_path / 'ann.json', json.dumps(coco))
    report = coco_to_dota(str(src), str(tmp_path / 'out'))
    assert (report.files, report.objects, report.skipped) == (2, 4, 2)
    assert report.messages[0] == "note: category 'small car' is written as 'small-car'"
    assert report.messages[1].startswith(f'{src}: annotation id 4: segmentation part 0')
    assert report.messages[2] == f'{src}: annotation id 5: the segmentation (or bbox) has no area'
    assert (tmp_path / 'out' / 'b.txt').read_text() == ''  # an image without annotations
    out = load_dota_labels(str(tmp_path / 'out' / 'a.txt'))
    assert out.names == ['plane', 'small-car', 'plane', 'plane']
    assert out.difficulties.tolist() == [0, 1, 0, 0]  # iscrowd -> difficulty 1
    # two parts: all their points; the area of shapely's minimum rotated rectangle
    pts = np.concatenate([np.reshape(p, (-1, 2)) for p in two_parts])
    ref = shapely.MultiPoint(pts).minimum_rotated_rectangle
    rect = shapely.Polygon(out.polygons[0].reshape(4, 2))
    assert rect.area == pytest.approx(ref.area, rel=1e-6)
    assert rect.buffer(1e-6).contains(shapely.MultiPoint(pts))
    assert corner_set(out.polygons[1]) == corner_set([2, 3, 6, 3, 6, 5, 2, 5])  # the RLE
    assert corner_set(out.polygons[2]) == corner_set([1, 2, 4, 2, 4, 6, 1, 6])  # the bbox
    assert corner_set(out.polygons[3]) == corner_set([10, 8, 13, 8, 13, 10, 10, 10])


def test_mask_pixel_corners_cover_the_pixels():
    mask = np.zeros((5, 6), bool)
    mask[1, 2] = True
    assert {tuple(p) for p in mask_pixel_corners(mask)} == {(2, 1), (3, 1), (2, 2), (3, 2)}
    assert mask_pixel_corners(np.zeros((3, 3), bool)).shape == (0, 2)


# ------------------------------------------------------------------------- DOTA -> COCO


def test_dota_to_coco_loads_with_pycocotools_and_has_hand_computed_values(tmp_path):
    write_image(tmp_path / 'images', 'P7')
    lab = write(
        tmp_path / 'dota' / 'P7.txt',
        'gsd:0.3\n'
        '2 0 4 2 2 4 0 2 plane 0\n'  # a diamond: bbox 0 0 4 4, area 8
        '1 1 7 1 7 4 1 4 ship 1\n'  # difficult: iscrowd
        '1 1 7 1 7 4 1 4 tree 0\n'
        '1 1 7 1 7 4 1 4 ship zero\n'
        '1 1 2 2 3 3 4 4 ship 0\n',  # collinear: no area
    )
    out_file = tmp_path / 'coco' / 'train.json'
    report = dota_to_coco(str(lab.parent), str(tmp_path / 'images'), str(out_file), CLASSES)
    assert (report.files, report.objects, report.skipped) == (1, 2, 3)
    assert [m.split(': ')[0] for m in sorted(report.messages)] == [
        f'{lab}:4',
        f'{lab}:5',
        f'{lab}:6',
    ]
    coco = COCO(str(out_file))
    load_coco_json(str(out_file))  # the project's checks pass
    assert coco.imgs[1] == dict(id=1, file_name='P7.png', width=W, height=H)
    assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == CLASSES
    a1, a2 = coco.loadAnns(coco.getAnnIds())
    assert (a1['bbox'], a1['area'], a1['iscrowd'], a1['category_id']) == ([0, 0, 4, 4], 8, 0, 1)
    assert (a2['bbox'], a2['area'], a2['iscrowd'], a2['category_id']) == ([1, 1, 6, 3], 18, 1, 2)
    assert a2['difficulty'] == 1 and a1['segmentation'] == [[2, 0, 4, 2, 2, 4, 0, 2]]
    # pycocotools rasterises the polygon: its mask area is close to the shoelace one
    assert abs(int(coco.annToMask(a2).sum()) - a2['area']) <= 8

    with pytest.raises(FileExistsError, match='--overwrite'):
        dota_to_coco(str(lab.parent), str(tmp_path / 'images'), str(out_file), CLASSES)


# ----------------------------------------------------------------------------- scripts


def test_scripts_print_the_report_and_refuse_a_non_empty_output(tmp_path, capsys):
    write_image(tmp_path / 'images', 'P1')
    write(tmp_path / 'dota' / 'P1.txt', DOTA_TEXT + '1 2 3\n')
    write(tmp_path / 'classes.txt', '\n'.join(CLASSES))
    imgs, classes = str(tmp_path / 'images'), str(tmp_path / 'classes.txt')
    to_yolo = load_script('dota2yolo_obb').main
    args = [str(tmp_path / 'dota'), imgs, str(tmp_path / 'yolo'), '--classes', classes]
    assert to_yolo(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == 'converted 1 files, 3 objects; skipped 1 entries (see messages)'
    assert out[1].startswith(f'  {tmp_path / "dota" / "P1.txt"}:6: expected')
    assert to_yolo(args) == 1
    assert 'is not empty' in capsys.readouterr().err
    assert to_yolo(args + ['--overwrite']) == 0
    assert to_yolo(args + ['--overwrite', '--strict']) == 1
    assert capsys.readouterr().err.startswith(f'error: {tmp_path / "dota" / "P1.txt"}:6:')

    back = [str(tmp_path / 'yolo'), imgs, str(tmp_path / 'back'), '--classes', 'plane,ship']
    assert load_script('yolo_obb2dota').main(back) == 0
    assert capsys.readouterr().out.startswith('converted 1 files, 2 objects; skipped 1 entries')

    dota2coco = [str(tmp_path / 'back'), imgs, str(tmp_path / 'c.json'), '--classes', classes]
    assert load_script('dota2coco').main(dota2coco) == 0
    assert load_script('coco2dota').main([str(tmp_path / 'c.json'), str(tmp_path / 'c')]) == 0
    assert len(load_dota_labels(str(tmp_path / 'c' / 'P1.txt'))) == 2

    write(tmp_path / 'lm' / 'x.json', json.dumps(dict(shapes=[])))
    assert load_script('labelme2dota').main([str(tmp_path / 'lm'), str(tmp_path / 'l')]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith('converted 1 files, 0 objects')
