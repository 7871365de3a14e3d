"""Switch YOLOX to its last-epochs mode: no strong augmentation, L1 loss on."""

from collections.abc import Sequence

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from ai4rs.registry import HOOKS


def restart_dataloader_workers(train_loader) -> bool:
    """Make a DataLoader with persistent workers start new workers (so they
    see a changed dataset). Returns True if a restart was forced."""
    if getattr(train_loader, 'persistent_workers', False) is True:
        train_loader._DataLoader__initialized = False
        train_loader._iterator = None
        return True
    return False


def get_bbox_head(model):
    """The bbox head of a (possibly wrapped, possibly tracking) detector."""
    if is_model_wrapper(model):
        model = model.module
    if hasattr(model, 'detector'):
        model = model.detector
    return model.bbox_head


@HOOKS.register_module()
class YOLOXModeSwitchHook(Hook):
    """From epoch ``max_epochs - num_last_epochs`` (1-based) on, switch the head's
    L1 loss on and skip the ``skip_type_keys`` transforms.

    With 0-based ``runner.epoch`` the switch happens before the epoch ``e``
    with ``e + 1 >= max_epochs - num_last_epochs``, once (also when training
    resumes after that point). Transforms are skipped through
    ``dataset.update_skip_type_keys`` when the dataset has it (mmdet's
    ``MultiImageMixDataset``); otherwise only the L1 loss is switched (use
    :class:`PipelineSwitchHook` to change the pipeline). Workers of a
    persistent-worker DataLoader are restarted so they see the change.

    Args:
        num_last_epochs (int): Defaults to 15.
        skip_type_keys (Sequence[str]): transform types to skip.
            Defaults to ('Mosaic', 'RandomAffine', 'MixUp').
    """

    def __init__(
        self,
        num_last_epochs: int = 15,
        skip_type_keys: Sequence[str] = ('Mosaic', 'RandomAffine', 'MixUp'),
    ) -> None:
        self.num_last_epochs = num_last_epochs
        self.skip_type_keys = skip_type_keys
        self._restart_dataloader = False
        self._has_switched = False

    def before_train_epoch(self, runner) -> None:
        train_loader = runner.train_dataloader
        to_switch = (runner.epoch + 1) >= runner.max_epochs - self.num_last_epochs
        if to_switch and not self._has_switched:
            dataset = train_loader.dataset
            if hasattr(dataset, 'update_skip_type_keys'):
                runner.logger.info('No mosaic and mixup aug now!')
                dataset.update_skip_type_keys(self.skip_type_keys)
                self._restart_dataloader = restart_dataloader_workers(train_loader)
            runner.logger.info('Add additional L1 loss now!')
            get_bbox_head(runner.model).use_l1 = True
            self._has_switched = True
        elif self._restart_dataloader:
            # restore the flag once the workers have been restarted
            train_loader._DataLoader__initialized = True
