# Prompt tuning on the quick-start data: the YOLO-World network trained by the quick start
# (tools/quickstart_yolo_world.py) is frozen and only the class embeddings are learned
# (SimpleYOLOWorldDetector, upstream's prompt-tuning recipe on a small scale). Class i of the
# dataset is row i of the embeddings, initialised from the CLIP embeddings of prompt_texts[i]:
#
#   python tools/misc/generate_text_embeddings.py CLIP_DIR --texts "red circle" "blue square" \
#       "green triangle" "yellow star" --out work_dirs/prompt_tuning/init_embeddings.pt
#   python tools/train.py configs/yolo_world_v2/yolo_world_v2_quickstart_prompt_tuning.py \
#       --cfg-options load_from=work_dirs/quickstart_yolo_world/epoch_15.pth
#   python tools/misc/export_prompt_embeddings.py work_dirs/yolo_world_v2_quickstart_prompt_tuning/\
#       epoch_5.pth --out tuned.pt
#
# tuned.pt ({text: (D,)}) then goes with the unchanged quick-start checkpoint
# (inference_detector(..., prompt_embeddings='tuned.pt'), the demo's --prompt-embeddings).
# New names for the classes: pass other prompt_texts (same order) and their embeddings.
_base_ = ['./yolo_world_v2_quickstart_synthetic.py']

load_from = 'work_dirs/quickstart_yolo_world/epoch_15.pth'
classes = ('red circle', 'blue square', 'green triangle', 'yellow star')
num_classes = len(classes)
# the text of each class (row i of the embeddings), written into the exported file
prompt_texts = list(classes)
embedding_path = 'work_dirs/prompt_tuning/init_embeddings.pt'
text_channels = 512
max_epochs = 5
train_batch_size_per_gpu = 8

model = dict(
    type='SimpleYOLOWorldDetector',
    prompt_dim=text_channels,
    num_prompts=num_classes,
    embedding_path=embedding_path,
    prompt_texts=prompt_texts,
    # the image side is frozen as in upstream's prompt-tuning configs: every image stage
    # (eval mode, no gradients), the neck and the head module (BatchNorms in eval mode, no
    # gradients); the backbone needs no text model
    backbone=dict(text_model=None, with_text_model=False, frozen_stages=4),
    neck=dict(freeze_all=True),
    bbox_head=dict(head_module=dict(freeze_all=True)),
)

# LoadText instead of RandomLoadText: the labels stay the dataset's class indices, i.e. the
# embeddings' rows (the texts it adds, the class names in order, are not used by the detector;
# YOLOWDetDataPreprocessor expects them in a batch)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='YOLOv5KeepRatioResize', scale=_base_.img_scale),
    dict(type='LetterResize', scale=_base_.img_scale, allow_scale_up=True, pad_val=dict(img=114.0)),
    dict(type='YOLOv5HSVRandomAug'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='LoadText'),
    dict(
        type='PackDetInputs',
        meta_keys=(
            'img_id',
            'img_path',
            'ori_shape',
            'img_shape',
            'flip',
            'flip_direction',
            'scale_factor',
            'pad_param',
            'texts',
        ),
    ),
]
train_dataloader = dict(batch_size=train_batch_size_per_gpu, dataset=dict(pipeline=train_pipeline))
# no texts at test time: the classes are the embeddings (so inference_detector runs the tuned
# model on images alone)
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='YOLOv5KeepRatioResize', scale=_base_.img_scale),
    dict(type='LetterResize', scale=_base_.img_scale, allow_scale_up=False, pad_val=dict(img=114)),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'pad_param'),
    ),
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

# only the embeddings require gradients: the optimizer's other groups never get a gradient,
# so AdamW leaves them as they are; no weight decay on the embeddings (upstream)
optim_wrapper = dict(
    optimizer=dict(lr=2e-3, batch_size_per_gpu=train_batch_size_per_gpu),
    paramwise_cfg=dict(custom_keys=dict(embeddings=dict(weight_decay=0.0))),
)
default_hooks = dict(
    param_scheduler=dict(max_epochs=max_epochs, warmup_epochs=0, warmup_mim_iter=0),
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=1),
)
# no EMA: the checkpoint holds the trained embeddings themselves
custom_hooks = []
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
