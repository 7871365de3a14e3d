from .dense_head_utils import filter_scores_and_topk, gt_instances_preprocess
from .misc import multi_apply, reduce_mean, samplelist_boxtype2tensor, unpack_gt_instances

__all__ = ['multi_apply', 'reduce_mean', 'unpack_gt_instances', 'samplelist_boxtype2tensor']
from .scaling import make_divisible, make_round  # noqa: E402

__all__ += ['make_divisible', 'make_round']
__all__ += ['gt_instances_preprocess', 'filter_scores_and_topk']
from .freeze import freeze_module, freeze_norms_and_params, set_norm_eval  # noqa: E402

__all__ += ['freeze_module', 'freeze_norms_and_params', 'set_norm_eval']
from .memory_format import is_channels_last, to_channels_last  # noqa: E402

__all__ += ['to_channels_last', 'is_channels_last']
