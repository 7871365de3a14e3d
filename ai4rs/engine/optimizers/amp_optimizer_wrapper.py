"""Mixed precision that also works without a GPU.

mmengine's ``AmpOptimWrapper`` refuses to start without CUDA (or NPU/MLU/MUSA),
so ``tools/train.py --amp`` could not be tried on a laptop or a CPU CI
machine. ai4rs registers a subclass under the same name in its scope: on an
accelerator it behaves exactly like mmengine's; on CPU it autocasts to
``bfloat16`` (the CPU's fast reduced precision, with float32's range, so no
loss scaling is needed) or, when ``dtype='float16'`` is asked for, to float16
with a CPU gradient scaler.
"""

from contextlib import contextmanager

import torch
from mmengine.device import is_cuda_available, is_mlu_available, is_musa_available, is_npu_available
from mmengine.optim import AmpOptimWrapper as MMEngineAmpOptimWrapper
from mmengine.optim import OptimWrapper

from ai4rs.registry import OPTIM_WRAPPERS


def _accelerator_available():
    return is_cuda_available() or is_npu_available() or is_mlu_available() or is_musa_available()


@OPTIM_WRAPPERS.register_module()
class AmpOptimWrapper(MMEngineAmpOptimWrapper):
    """mmengine's AmpOptimWrapper, plus a CPU path (bfloat16 autocast by default).

    Args:
        loss_scale (str | float | dict): as mmengine's; used on CPU only with float16.
        dtype (str | torch.dtype, optional): autocast dtype. On CPU ``None``
            means ``bfloat16``.
        use_fsdp (bool): as mmengine's.
        **kwargs: passed to :class:`mmengine.optim.OptimWrapper`.
    """

    def __init__(self, loss_scale='dynamic', dtype=None, use_fsdp=False, **kwargs):
        self.on_cpu = not _accelerator_available()
        if not self.on_cpu:
            super().__init__(loss_scale=loss_scale, dtype=dtype, use_fsdp=use_fsdp, **kwargs)
            return
        OptimWrapper.__init__(self, **kwargs)
        self._scale_update_param = None
        if isinstance(dtype, str):
            if dtype not in self.valid_dtypes:
                raise ValueError(f'dtype should be one of {self.valid_dtypes}, got {dtype!r}')
            dtype = getattr(torch, dtype)
        self.cast_dtype = torch.bfloat16 if dtype is None else dtype
        use_scaler = self.cast_dtype == torch.float16
        if isinstance(loss_scale, float):
            self._scale_update_param = loss_scale
            scaler_kwargs = dict(init_scale=loss_scale)
        elif isinstance(loss_scale, dict):
            scaler_kwargs = dict(loss_scale)
        elif loss_scale == 'dynamic':
            scaler_kwargs = {}
        else:
            raise TypeError(f'loss_scale must be a float, a dict or "dynamic", got {loss_scale!r}')
        self.loss_scaler = torch.amp.GradScaler('cpu', enabled=use_scaler, **scaler_kwargs)

    @contextmanager
    def optim_context(self, model):
        if not self.on_cpu:
            with super().optim_context(model):
                yield
            return
        with (
            OptimWrapper.optim_context(self, model),
            torch.autocast(device_type='cpu', dtype=self.cast_dtype),
        ):
            yield
