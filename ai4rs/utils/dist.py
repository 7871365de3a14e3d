"""Choosing the distributed backend at run time, so one config runs anywhere.

mmengine's launchers always call ``torch.cuda.set_device`` and wrap the model
in DistributedDataParallel with ``device_ids=[LOCAL_RANK]``; both fail on a
machine without CUDA. :func:`prepare_distributed` keeps mmengine's path when
CUDA is available, and otherwise initialises a ``gloo`` process group itself
(from the torchrun, slurm or OpenMPI environment) and asks for a CPU
DistributedDataParallel wrapper.
"""

import os
import subprocess

import torch
import torch.distributed as torch_dist
from mmengine.logging import print_log


def resolve_backend(requested, cuda_available=None):
    """The backend to use: 'nccl' needs CUDA, so without it 'gloo' is chosen.

    Args:
        requested (str | None): the config's ``env_cfg.dist_cfg.backend``;
            ``None`` or ``'auto'`` means "nccl with CUDA, gloo without".
        cuda_available (bool, optional): defaults to ``torch.cuda.is_available()``.
    """
    if cuda_available is None:
        cuda_available = torch.cuda.is_available()
    if requested in (None, 'auto'):
        return 'nccl' if cuda_available else 'gloo'
    if requested == 'nccl' and not cuda_available:
        return 'gloo'
    return requested


def _env_from_slurm():
    """Set RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT from SLURM_*."""
    os.environ['RANK'] = os.environ['SLURM_PROCID']
    os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
    os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', '0')
    os.environ.setdefault('MASTER_PORT', '29500')
    if 'MASTER_ADDR' not in os.environ:
        nodes = os.environ['SLURM_NODELIST']
        os.environ['MASTER_ADDR'] = subprocess.getoutput(
            f'scontrol show hostname {nodes} | head -n1'
        )


def _env_from_mpi():
    """Set RANK, WORLD_SIZE, LOCAL_RANK from OpenMPI's variables."""
    os.environ['RANK'] = os.environ['OMPI_COMM_WORLD_RANK']
    os.environ['WORLD_SIZE'] = os.environ['OMPI_COMM_WORLD_SIZE']
    os.environ['LOCAL_RANK'] = os.environ['OMPI_COMM_WORLD_LOCAL_RANK']
    os.environ.setdefault('MASTER_PORT', '29500')
    os.environ.setdefault('MASTER_ADDR', '127.0.0.1')


def prepare_distributed(cfg, launcher):
    """Make ``cfg`` launchable with ``launcher`` on this machine (in place).

    With CUDA, only an 'auto'/missing backend is resolved (to 'nccl') and
    mmengine does the rest. Without CUDA, the backend becomes 'gloo', the
    process group is initialised here (mmengine then finds it initialised and
    skips its CUDA-only path), and the model is wrapped in CPU
    DistributedDataParallel (``device_ids=None``).
    """
    if launcher == 'none':
        return
    env_cfg = cfg.setdefault('env_cfg', {})
    dist_cfg = env_cfg.setdefault('dist_cfg', {})
    requested = dist_cfg.get('backend')
    backend = resolve_backend(requested)
    if backend != requested:
        print_log(
            f'distributed backend: {backend} (config asked for {requested!r}; '
            f'CUDA available: {torch.cuda.is_available()})',
            logger='current',
        )
    dist_cfg['backend'] = backend
    if torch.cuda.is_available() or torch_dist.is_initialized():
        return
    if launcher == 'slurm':
        _env_from_slurm()
    elif launcher == 'mpi':
        _env_from_mpi()
    kwargs = {k: v for k, v in dist_cfg.items() if k != 'backend'}
    if 'timeout' in kwargs:
        import datetime

        kwargs['timeout'] = datetime.timedelta(seconds=kwargs['timeout'])
    torch_dist.init_process_group(
        backend=backend,
        rank=int(os.environ['RANK']),
        world_size=int(os.environ['WORLD_SIZE']),
        **kwargs,
    )
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel',
        broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False),
    )
    wrapper['device_ids'] = None
    cfg['model_wrapper_cfg'] = wrapper


def teardown_distributed():
    """Wait for every process, then destroy the process group (if there is one).

    Without this, processes exit while gloo's background threads still run,
    and one of them may abort at exit ("terminate called without an active
    exception") after a run that itself succeeded.
    """
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.barrier()
        torch_dist.destroy_process_group()
