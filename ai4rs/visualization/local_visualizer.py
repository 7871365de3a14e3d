"""Drawing horizontal, rotated and quadrilateral boxes (and polygon masks) on images."""

import colorsys
import logging

import numpy as np
from mmengine.logging import print_log
from mmengine.visualization import Visualizer

from ai4rs.registry import VISUALIZERS
from ai4rs.structures.bbox import BaseBoxes
from ai4rs.structures.mask import PolygonMasks


def default_palette(num_classes):
    """``num_classes`` well separated RGB colours (deterministic)."""
    colors = []
    for i in range(num_classes):
        h = (i * 0.618033988749895) % 1.0
        r, g, b = colorsys.hsv_to_rgb(h, 0.75, 0.95)
        colors.append((int(r * 255), int(g * 255), int(b * 255)))
    return colors


def label_names(data_sample=None, classes=None) -> list[str] | None:
    """The names of a data sample's label indexes.

    A YOLO-World sample carries its own prompts: after ``RandomLoadText`` its labels index
    the sample's ``texts`` (shuffled positives and negatives, padding at the end), after
    ``LoadText`` the texts are the classes in order. So the sample's ``texts`` metainfo
    names its labels when present (an entry that is a list of captions is named by its
    first caption); otherwise the dataset's ``classes``.

    Args:
        data_sample (DetDataSample, optional): a sample, possibly with ``texts``.
        classes (Sequence[str], optional): the dataset's class names.

    Returns:
        list[str] | None: ``names[label]``; None when neither is known.
    """
    texts = data_sample.get('texts', None) if data_sample is not None else None
    if texts is not None:
        return [t if isinstance(t, str) else (str(t[0]) if len(t) else '') for t in texts]
    return list(classes) if classes is not None else None


def _box_corners(bboxes: BaseBoxes) -> np.ndarray:
    """Box object (hbox, rbox or qbox) -> (N, 4, 2) float64 corners (via ``convert_to``)."""
    if not isinstance(bboxes, BaseBoxes):
        raise TypeError(
            f'the visualizer draws box objects (HorizontalBoxes, RotatedBoxes, '
            f'QuadriBoxes), got {type(bboxes).__name__}; wrap raw tensors with '
            f'ai4rs.structures.bbox.boxes_from_tensor(tensor, box_type)'
        )
    qboxes = bboxes.convert_to('qbox').tensor
    return qboxes.detach().cpu().double().numpy().reshape(-1, 4, 2)


def _rects_overlap(a, b) -> bool:
    (ax, ay, aw, ah), (bx, by, bw, bh) = a, b
    return ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah


def place_labels(polygons, sizes, image_shape):
    """Top-left corners for labels: inside the image, not on each other, off the boxes if possible.

    Candidate places for a label, in order: just above its polygon (left-aligned
    with its leftmost corner), just below it, then further up / down in steps
    of the label height or next to labels already placed (nearest first), each
    clamped into the image. The first candidate that
    overlaps neither a label placed before nor any polygon's bounding box is
    taken; else the first that overlaps no label; else the first candidate.

    Args:
        polygons (ndarray): (N, 4, 2) corners (x, y) in pixels.
        sizes (ndarray): (N, 2) label widths and heights in pixels.
        image_shape (tuple): (h, w) of the image.

    Returns:
        ndarray: (N, 2) float top-left (x, y) of each label; every label
        rectangle lies inside the image when it is smaller than the image.
    """
    h, w = image_shape[:2]
    polygons = np.asarray(polygons, dtype=np.float64).reshape(-1, 4, 2)
    sizes = np.asarray(sizes, dtype=np.float64).reshape(-1, 2)
    boxes = [(p[:, 0].min(), p[:, 1].min(), np.ptp(p[:, 0]), np.ptp(p[:, 1])) for p in polygons]
    placed = []
    out = np.zeros((len(polygons), 2))
    for i, (poly, (tw, th)) in enumerate(zip(polygons, sizes)):
        x = min(max(poly[:, 0].min(), 0.0), max(w - tw, 0.0))
        top, bottom = poly[:, 1].min() - th, poly[:, 1].max()
        steps = int(h // max(th, 1.0)) + 1
        ys = [y for k in range(1, steps) for y in (top - k * th, bottom + k * th)]
        ys += [y for px, py, pw, ph in placed for y in (py + ph, py - th)]  # next to labels
        ys = sorted(ys, key=lambda y: min(abs(y - top), abs(y - bottom)))
        ys = list(dict.fromkeys(min(max(y, 0.0), max(h - th, 0.0)) for y in [top, bottom] + ys))
        rects = [(x, y, tw, th) for y in ys]
        free_of_labels = [r for r in rects if not any(_rects_overlap(r, p) for p in placed)]
        free = [r for r in free_of_labels if not any(_rects_overlap(r, b) for b in boxes)]
        chosen = (free or free_of_labels or rects)[0]
        placed.append(chosen)
        out[i] = chosen[:2]
    return out


@VISUALIZERS.register_module()
class DetLocalVisualizer(Visualizer):
    """mmdet's DetLocalVisualizer for hbox, rbox and qbox instances.

    Args:
        name (str): instance name.
        image (ndarray, optional): the image to draw on (RGB).
        vis_backends (list[dict], optional): visual backends config.
        save_dir (str, optional): directory of the visual backends.
        bbox_color (str | tuple, optional): one colour for every box; by
            default each class takes its colour from ``dataset_meta['palette']``.
        text_color (str | tuple): colour of the labels.
        line_width (int | float): box line width.
        alpha (float): box transparency.
    """

    def __init__(
        self,
        name='visualizer',
        image=None,
        vis_backends=None,
        save_dir=None,
        bbox_color=None,
        text_color=(200, 200, 200),
        line_width=2,
        alpha=0.8,
    ):
        super().__init__(name=name, image=image, vis_backends=vis_backends, save_dir=save_dir)
        self.bbox_color = bbox_color
        self.text_color = text_color
        self.line_width = line_width
        self.alpha = alpha
        self.dataset_meta = {}

    def _class_colors(self, num_classes):
        palette = self.dataset_meta.get('palette')
        if palette is None or len(palette) < num_classes:
            palette = default_palette(max(num_classes, 1))
        return [tuple(int(c) for c in p) for p in palette]

    def _label_colors(self, labels, names):
        """One RGB colour per label: the palette colour of the dataset class its name is
        (so remapped YOLO-World labels keep their class colour), else of the label index."""
        dataset_classes = list(self.dataset_meta.get('classes') or [])
        index = {name: i for i, name in enumerate(dataset_classes)}
        idx = [index.get(names[lb], lb) if names and lb < len(names) else lb for lb in labels]
        colors = self._class_colors(max([len(dataset_classes), *[i + 1 for i in idx]]))
        return [self.bbox_color or colors[i % len(colors)] for i in idx]

    def draw_masks(self, masks, colors):
        """Draw polygon masks, filled at half of ``alpha`` and outlined.

        Args:
            masks (PolygonMasks): N instances, pixel coordinates of the image.
            colors (list[tuple]): N RGB colours.
        """
        if not isinstance(masks, PolygonMasks):
            print_log(
                f'DetLocalVisualizer: masks of type {type(masks).__name__} are not drawn '
                '(only PolygonMasks)',
                logger='current',
                level=logging.WARNING,
            )
            return
        polygons, edge = [], []
        for polys, color in zip(masks.masks, colors):
            for poly in polys:
                if len(poly) >= 6:  # at least a triangle
                    polygons.append(np.asarray(poly, dtype=np.float64).reshape(-1, 2))
                    edge.append(color)
        if polygons:
            self.draw_polygons(
                polygons, edge_colors=edge, face_colors=edge, line_widths=1, alpha=self.alpha * 0.5
            )

    def draw_instances(self, image, instances, classes=None, score_thr=0.0):
        """Draw ``instances`` (``bboxes`` a box object, ``labels``, optional ``scores`` and
        ``masks`` as :class:`PolygonMasks`) on ``image``.

        Args:
            image (ndarray): RGB image, (H, W, 3) uint8.
            instances (InstanceData): ``bboxes`` (N boxes of any box type), ``labels`` (N,).
            classes (Sequence[str], optional): label names, ``classes[label]`` (see
                :func:`label_names`).
            score_thr (float): instances with lower ``scores`` are not drawn.

        Returns:
            ndarray: the drawn RGB image.
        """
        self.set_image(image)
        if 'bboxes' not in instances or len(instances) == 0:
            return self.get_image()
        if 'scores' in instances:
            instances = instances[instances.scores >= score_thr]
            if len(instances) == 0:
                return self.get_image()
        labels = (
            instances.labels.detach().cpu().numpy().astype(int)
            if 'labels' in instances
            else np.zeros(len(instances), int)
        )
        polygons = _box_corners(instances.bboxes)
        edge = self._label_colors(labels, classes)
        if 'masks' in instances:
            self.draw_masks(instances.masks, edge)
        self.draw_polygons(
            list(polygons), edge_colors=edge, line_widths=self.line_width, alpha=self.alpha
        )
        # a box partly outside the image (rotated boxes are not clipped) must not make
        # matplotlib widen the view, which shrinks and shifts the whole drawing
        self.ax_save.set_xlim(0, image.shape[1])
        self.ax_save.set_ylim(image.shape[0], 0)
        scores = instances.scores.detach().cpu().numpy() if 'scores' in instances else None
        texts = []
        for i, lb in enumerate(labels):
            name = classes[lb] if classes and lb < len(classes) else f'class {lb}'
            texts.append(name if scores is None else f'{name}: {scores[i]:.2f}')
        h, w = image.shape[:2]
        font = int(max(8, min(13, 0.02 * (h * w) ** 0.5)))
        # label boxes in pixels: font points at the figure's dpi, ~0.6 em per character,
        # plus the 0.5-em padding of the text box on each side
        em = font * getattr(self, 'dpi', 100) / 72
        sizes = np.array([[(0.6 * len(t) + 1.0) * em, 2.0 * em] for t in texts])
        positions = place_labels(polygons, sizes, (h, w)) + 0.5 * em
        self.draw_texts(
            texts,
            positions,
            colors=self.text_color,
            font_sizes=font,
            bboxes=[dict(facecolor='black', alpha=0.6, pad=0.5, edgecolor='none')] * len(texts),
        )
        return self.get_image()

    def add_datasample(
        self,
        name,
        image,
        data_sample=None,
        draw_gt=True,
        draw_pred=True,
        show=False,
        wait_time=0,
        out_file=None,
        pred_score_thr=0.3,
        step=0,
    ):
        """Draw GT (left) and predictions (right) of one data sample.

        Args:
            name (str): the image identifier for the backends.
            image (ndarray): RGB image, (H, W, 3) uint8.
            data_sample (DetDataSample, optional): with ``gt_instances`` and/or
                ``pred_instances``; labels are named by its ``texts`` when it has them,
                else by ``dataset_meta['classes']`` (:func:`label_names`).
            out_file (str, optional): write the drawing to this file instead
                of the visual backends.
        """
        image = np.ascontiguousarray(image.clip(0, 255).astype(np.uint8))
        classes = label_names(data_sample, self.dataset_meta.get('classes'))
        gt_img = pred_img = None
        if data_sample is not None:
            data_sample = data_sample.cpu()
            if draw_gt and 'gt_instances' in data_sample:
                gt = data_sample.gt_instances
                if 'bboxes' in gt and not isinstance(gt.bboxes, BaseBoxes):
                    # DetDataPreprocessor(boxtype2tensor=True) dropped the box type
                    print_log(
                        'DetLocalVisualizer: ground truth not drawn, its bboxes are a '
                        'raw tensor without a box type (set boxtype2tensor=False in the '
                        'data preprocessor to draw it)',
                        logger='current',
                        level=logging.WARNING,
                    )
                else:
                    gt_img = self.draw_instances(image, gt, classes)
            if draw_pred and 'pred_instances' in data_sample:
                pred_img = self.draw_instances(
                    image, data_sample.pred_instances, classes, score_thr=pred_score_thr
                )
        drawn = [im for im in (gt_img, pred_img) if im is not None]
        drawn_img = np.concatenate(drawn, axis=1) if drawn else image
        self.set_image(drawn_img)
        if show:
            self.show(drawn_img, win_name=name, wait_time=wait_time)
        if out_file is not None:
            import mmcv

            mmcv.imwrite(drawn_img[..., ::-1], out_file)
        else:
            self.add_image(name, drawn_img, step)
        return drawn_img


@VISUALIZERS.register_module()
class RotLocalVisualizer(DetLocalVisualizer):
    """mmrotate's name for :class:`DetLocalVisualizer` (which draws every box type)."""


def draw_predictions(model, img_path, result, out_file=None, score_thr=0.3):
    """Draw ``result``'s predictions (score >= ``score_thr``) on the image file.

    Shows a window when ``out_file`` is None. Returns the number of drawn
    predictions. Class names and colours come from ``model.dataset_meta``.
    """
    from ai4rs.datasets.image_io import config_to_uint8_rule, read_image

    visualizer = DetLocalVisualizer.get_instance('ai4rs_demo')
    visualizer.dataset_meta = getattr(model, 'dataset_meta', {}) or {}
    rule = config_to_uint8_rule(getattr(model, 'cfg', None))
    img = read_image(img_path, to_uint8_rule=rule)[..., ::-1]  # the model's pixels, RGB
    visualizer.add_datasample(
        'result',
        img,
        data_sample=result,
        draw_gt=False,
        show=out_file is None,
        out_file=out_file,
        pred_score_thr=score_thr,
    )
    return int((result.pred_instances.scores >= score_thr).sum())
