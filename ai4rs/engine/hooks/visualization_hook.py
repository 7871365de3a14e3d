"""Drawing predictions during validation and testing (``tools/test.py --show-dir``)."""

import os.path as osp

import numpy as np
from mmengine.fileio import get
from mmengine.hooks import Hook
from mmengine.utils import mkdir_or_exist
from mmengine.visualization import Visualizer

from ai4rs.registry import HOOKS


@HOOKS.register_module()
class DetVisualizationHook(Hook):
    """mmdet's DetVisualizationHook: draws GT and predictions with the runner's visualizer.

    Args:
        draw (bool): draw at all (``tools/test.py --show/--show-dir`` sets it).
        interval (int): during validation, draw every ``interval``-th batch.
        score_thr (float): predictions below this score are not drawn.
        show (bool): show the drawings in a window.
        wait_time (float): seconds each window stays open.
        test_out_dir (str, optional): during testing, save one drawing per
            image to ``{work_dir}/{timestamp}/{test_out_dir}/{image name}``.
        backend_args (dict, optional): file client arguments for reading images.
    """

    def __init__(
        self,
        draw=False,
        interval=50,
        score_thr=0.3,
        show=False,
        wait_time=0.0,
        test_out_dir=None,
        backend_args=None,
    ):
        self._visualizer = Visualizer.get_current_instance()
        self.interval = interval
        self.score_thr = score_thr
        self.show = show
        if self.show:
            self._visualizer._vis_backends = {}
        self.wait_time = wait_time
        self.backend_args = backend_args
        self.draw = draw
        self.test_out_dir = test_out_dir
        self._test_index = 0

    def before_run(self, runner) -> None:
        from ai4rs.datasets.image_io import config_to_uint8_rule

        # draw the pixels the model sees: deep images through the pipeline's rule
        self._to_uint8_rule = config_to_uint8_rule(runner.cfg)

    def _read(self, img_path):
        from ai4rs.datasets.image_io import decode_image, to_uint8

        img = decode_image(get(img_path, backend_args=self.backend_args), img_path)
        img = to_uint8(img, getattr(self, '_to_uint8_rule', 'bit_depth'))
        return np.ascontiguousarray(img[..., ::-1])  # BGR -> RGB

    def after_val_iter(self, runner, batch_idx, data_batch, outputs):
        if not self.draw:
            return
        total_curr_iter = runner.iter + batch_idx
        if total_curr_iter % self.interval != 0:
            return
        img_path = outputs[0].img_path
        self._visualizer.add_datasample(
            osp.basename(img_path) if self.show else 'val_img',
            self._read(img_path),
            data_sample=outputs[0],
            show=self.show,
            wait_time=self.wait_time,
            pred_score_thr=self.score_thr,
            step=total_curr_iter,
        )

    def after_test_iter(self, runner, batch_idx, data_batch, outputs):
        if not self.draw:
            return
        out_dir = None
        if self.test_out_dir is not None:
            out_dir = osp.join(runner.work_dir, runner.timestamp, self.test_out_dir)
            mkdir_or_exist(out_dir)
        for data_sample in outputs:
            self._test_index += 1
            img_path = data_sample.img_path
            out_file = osp.join(out_dir, osp.basename(img_path)) if out_dir else None
            self._visualizer.add_datasample(
                osp.basename(img_path) if self.show else 'test_img',
                self._read(img_path),
                data_sample=data_sample,
                show=self.show,
                wait_time=self.wait_time,
                pred_score_thr=self.score_thr,
                out_file=out_file,
                step=self._test_index,
            )
