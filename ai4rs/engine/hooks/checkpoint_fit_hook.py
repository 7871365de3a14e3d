"""Refusing checkpoints that do not fit the model, in every Runner load and resume."""

from mmengine.hooks import Hook
from mmengine.model import BaseTTAModel, is_model_wrapper
from mmengine.runner import BaseLoop

from ai4rs.registry import HOOKS
from ai4rs.utils.checkpoint import PARTIAL_LOAD_KEY, fit_checkpoint_to_model


@HOOKS.register_module()
class CheckpointFitHook(Hook):
    """Check each checkpoint the Runner loads (``load_from``, ``--resume``) against the model.

    Runs in ``after_load_checkpoint``, before the weights reach the model and
    before ``EMAHook`` copies them, and applies
    :func:`ai4rs.utils.checkpoint.fit_checkpoint_to_model`: a checkpoint with
    wrong-shape weights, or without a large share of the model's weights, is
    refused with a summary (``CheckpointMismatchError``).
    ``configs/_base_/default_runtime.py`` registers it as
    ``default_hooks.checkpoint_fit``, and ``ai4rs.utils.config.load_runner_config``
    adds it to configs that lack it.

    Args:
        allow_partial_load (bool, optional): load whatever fits. ``None``
            (default) reads the config's top-level ``allow_partial_load``
            (``False`` when absent).
        allow_class_change (bool, optional): skip class layers whose only
            difference is the number of classes. ``None`` (default): allowed
            when training from ``load_from`` (fine-tuning), refused when
            testing or resuming (there the class layers would stay random).
        max_missing_share (float): refuse when the weights the checkpoint
            does not provide hold more than this share of the model's elements.
    """

    priority = 'VERY_HIGH'

    def __init__(
        self,
        allow_partial_load: bool | None = None,
        allow_class_change: bool | None = None,
        max_missing_share: float = 0.1,
    ):
        self.allow_partial_load = allow_partial_load
        self.allow_class_change = allow_class_change
        self.max_missing_share = max_missing_share

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if isinstance(model, BaseTTAModel):  # tools/test.py --tta: the weights are the detector's
            model = model.module
        partial = self.allow_partial_load
        if partial is None:
            partial = bool(runner.cfg.get(PARTIAL_LOAD_KEY, False))
        class_change = self.allow_class_change
        if class_change is None:
            training = isinstance(getattr(runner, '_train_loop', None), BaseLoop)
            class_change = training and not runner._resume
        source = f'checkpoint {runner._load_from}' if runner._load_from else 'the checkpoint'
        fit_checkpoint_to_model(
            model,
            checkpoint,
            allow_partial_load=partial,
            allow_class_change=class_change,
            max_missing_share=self.max_missing_share,
            source=source,
        )
