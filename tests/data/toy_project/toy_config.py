# A tiny config for the tool tests. `_base_` is rewritten by the tests to the
# absolute path of configs/_base_/default_runtime.py.
_base_ = ['RUNTIME']

custom_imports = dict(imports=['projects.toy_cls'], allow_failed_imports=False)

data_root = 'toy_data/'
pipeline = [dict(type='LoadImageFromFile'), dict(type='PackToyInputs')]
dataset = dict(type='ToyBrightnessDataset', data_root=data_root, ann_file='ann.txt',
               data_prefix=dict(img_path='images/'), pipeline=pipeline)
train_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
                        sampler=dict(type='DefaultSampler', shuffle=True), dataset=dataset)
val_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
                      sampler=dict(type='DefaultSampler', shuffle=False), dataset=dataset)
test_dataloader = val_dataloader
val_evaluator = dict(type='ToyAccuracy')
test_evaluator = val_evaluator

model = dict(type='ToyBrightnessClassifier',
             data_preprocessor=dict(type='ImgDataPreprocessor', mean=[127.5] * 3, std=[127.5] * 3))

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=2, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=1e-4))
param_scheduler = [dict(type='MultiStepLR', by_epoch=True, milestones=[1], gamma=0.5)]
auto_scale_lr = dict(enable=False, base_batch_size=4)

default_hooks = dict(logger=dict(type='LoggerHook', interval=1))
randomness = dict(seed=0, deterministic=False)
