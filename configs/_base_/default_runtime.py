# Runtime settings shared by every ai4rs config.
default_scope = 'ai4rs'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='DetVisualizationHook'),
)

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # 'nccl' is used when CUDA is available. tools/train.py and tools/test.py
    # switch to 'gloo' (and CPU DistributedDataParallel) when it is not, so the
    # same config runs multi-process on CPU-only machines.
    dist_cfg=dict(backend='nccl'),
)

# LocalVisBackend writes TIMESTAMP/vis_data/scalars.json (read by analyze_logs.py); to log to
# TensorBoard or W&B as well, a config that inherits yours sets
#   visualizer = dict(vis_backends=_base_.vis_backends + [dict(type='TensorboardVisBackend')])
# (docs/train_test.md, "Curves and logging backends")
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='RotLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True)

log_level = 'INFO'
load_from = None
resume = False

# A checkpoint that does not fit the model (wrong shapes, most weights missing) is refused
# with a summary; `allow_partial_load = True` (tools: --allow-partial-load) loads what fits.
default_hooks['checkpoint_fit'] = dict(type='CheckpointFitHook')
allow_partial_load = False
# a progress bar with ETA over each epoch / validation / test, only when stdout is a terminal
default_hooks['progress'] = dict(type='ProgressBarHook')
