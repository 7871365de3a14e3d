"""Replace the training pipeline from a given epoch on."""

from mmcv.transforms import Compose
from mmengine.hooks import Hook

from ai4rs.registry import HOOKS

from .yolox_mode_switch_hook import restart_dataloader_workers


@HOOKS.register_module()
class PipelineSwitchHook(Hook):
    """Set ``train_dataloader.dataset.pipeline = Compose(switch_pipeline)``
    before the first epoch ``>= switch_epoch`` (0-based), once.

    Workers of a persistent-worker DataLoader are restarted so that they use
    the new pipeline.

    Args:
        switch_epoch (int): first epoch (0-based) trained with the new pipeline.
        switch_pipeline (list[dict]): the new pipeline.
    """

    def __init__(self, switch_epoch: int, switch_pipeline: list[dict]) -> None:
        self.switch_epoch = switch_epoch
        self.switch_pipeline = switch_pipeline
        self._restart_dataloader = False
        self._has_switched = False

    def before_train_epoch(self, runner) -> None:
        train_loader = runner.train_dataloader
        if runner.epoch >= self.switch_epoch and not self._has_switched:
            runner.logger.info('Switch pipeline now!')
            train_loader.dataset.pipeline = Compose(self.switch_pipeline)
            self._restart_dataloader = restart_dataloader_workers(train_loader)
            self._has_switched = True
        elif self._restart_dataloader:
            train_loader._DataLoader__initialized = True
