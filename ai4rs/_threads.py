"""ai4rs's OpenMP threading policy, applied on import, before torch loads.

PyTorch's CPU kernels run on an OpenMP thread pool whose idle threads, by default, spin for a
while before sleeping. On a machine whose cores are shared (dataloader workers, other jobs,
a CI runner) the spinning threads steal the cores the working ones need: measured on a 2-core
machine beside two busy processes, a 2-thread ``box_iou_rotated`` took 57x its idle time and a
YOLOX-s training iteration 3.3x, and with ``OMP_WAIT_POLICY=PASSIVE`` (idle threads sleep) 1.6x
and 2.1x, with no measurable idle cost on the training iteration (see
``tools/analysis_tools/benchmark_load.py`` and docs/model_zoo.md). So ai4rs sets
``OMP_WAIT_POLICY=PASSIVE`` unless:

- the user set ``OMP_WAIT_POLICY`` themselves (theirs wins), or
- ``AI4RS_OMP_WAIT_POLICY=unset`` is in the environment (leave OpenMP's default), or
- torch was imported before ai4rs (OpenMP reads the variable once, when torch loads it; the
  tools import ai4rs first for this reason).

Child processes (dataloader workers, torchrun workers) inherit the setting through the
environment. This module must not import torch.
"""

import os
import sys


def apply_omp_wait_policy() -> bool:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` when allowed (see the module docstring).

    Returns:
        bool: whether this call set the variable.
    """
    if os.environ.get('AI4RS_OMP_WAIT_POLICY', '').lower() == 'unset':
        return False
    if 'OMP_WAIT_POLICY' in os.environ or 'torch' in sys.modules:
        return False
    os.environ['OMP_WAIT_POLICY'] = 'PASSIVE'
    return True
