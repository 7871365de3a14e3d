"""Building a detector from a config and running it on images (mmdet's API)."""

import numpy as np
import torch
from mmengine.model.utils import revert_sync_batchnorm
from mmengine.registry import init_default_scope

from ai4rs.models.utils.inference_mode import (
    is_inference_mode,
    resolve_bf16,
    resolve_channels_last,
    to_inference_mode,
)
from ai4rs.registry import MODELS
from ai4rs.utils.checkpoint import PARTIAL_LOAD_KEY, load_checkpoint_checked

from .pipeline import (
    build_inference_pipeline,
    config_dataset_meta,
    load_model_config,
    pipeline_input,
)


def init_detector(
    config,
    checkpoint=None,
    palette='none',
    device='cpu',
    cfg_options=None,
    allow_partial_load=False,
    inference_mode=True,
    channels_last='auto',
    backend=None,
    onnx_file=None,
    bf16=False,
):
    """Build a detector from a config and (optionally) load a checkpoint.

    The checkpoint is read with ``weights_only=True`` (see
    :func:`ai4rs.utils.load_checkpoint_safely`): a file that would run code
    is refused, and so is one that does not fit the model (wrong shapes,
    most weights missing: :class:`ai4rs.utils.checkpoint.CheckpointMismatchError`
    with a summary) unless partial loading is asked for.

    Args:
        config (str | Path | Config): config file or object.
        checkpoint (str, optional): checkpoint path; without one the weights
            are the model's initialisation. An ``.onnx`` file (written by
            ``tools/deployment/export_onnx.py``) gives an
            :class:`ai4rs.apis.deployment.OnnxDetector` run by onnxruntime, which
            :func:`inference_detector` and sliced inference use like the model.
        palette (str): kept for mmdet compatibility; the palette comes from
            the checkpoint's or the dataset's ``dataset_meta``.
        device (str): e.g. ``'cpu'`` or ``'cuda:0'``.
        cfg_options (dict, optional): overrides merged into the config.
        allow_partial_load (bool): load whatever fits and leave the rest as
            initialised (also set by the config's ``allow_partial_load``).
        inference_mode (bool): make the model an inference model
            (:func:`ai4rs.models.utils.inference_mode.to_inference_mode`): each
            ConvModule's BatchNorm folded into its conv (its state dict then has
            a ``conv.bias`` and no ``bn.*`` keys for those convs); outputs equal
            the eager model's within float rounding (1e-4 of the outputs' scale).
            ``False`` keeps the eager model (to train it, compare or save its
            state dict, or recalibrate its BatchNorms). Defaults to True.
        channels_last (bool | str): with ``inference_mode``, channels-last weights and
            backbone input too. ``'auto'`` (default): on CPU, where it was faster for both
            families at every batch size measured (docs/model_zoo.md, "Inference against the
            machine's limit"), not on other devices. Its float rounding differs from the
            contiguous model's (float32 rounding of the sums), which can swap near-
            tied scores; ``False`` keeps the contiguous layout.
        backend (str, optional): ``'pytorch'`` or ``'onnxruntime'``; None (default):
            ``'onnxruntime'`` for an ``.onnx`` checkpoint, else ``'pytorch'``.
            ``'onnxruntime'`` with a PyTorch checkpoint exports the loaded weights (input
            size of the test pipeline, dynamic batch, a run-time vocabulary for
            open-vocabulary models) and returns an ``OnnxDetector`` on the export (see
            :mod:`ai4rs.apis.deployment.backend` and docs/model_zoo.md, "ONNX Runtime backend").
            ``'pytorch'`` with an ``.onnx`` file is an error.
        onnx_file (str, optional): with ``backend='onnxruntime'`` and a PyTorch
            checkpoint, where the export is written and kept; None: a temporary file,
            removed once onnxruntime has read it.
        bf16 (bool | str): with ``inference_mode``, a bfloat16 network
            (:func:`ai4rs.models.utils.inference_mode.to_bf16_network`: backbone, neck and
            head convolutions in bfloat16, channels-last; the text model, decoding and all
            post-processing in float32; predictions float32). True: an error
            (ValueError) where ``device`` has no native bfloat16 (on CPU: AVX-512 BF16 /
            AMX); ``'auto'``: bfloat16 where supported, else float32 with a logged
            warning; False / None: float32. True with the onnxruntime backend is an error,
            ``'auto'`` runs the export as it is (float32). Defaults to False.

    Returns:
        nn.Module | OnnxDetector: the model in eval mode, with ``model.cfg`` and
        ``model.dataset_meta`` (``classes``, ``palette``) set.
    """
    from .deployment.backend import onnxruntime_detector, resolve_backend

    config = load_model_config(config, cfg_options)
    use_onnxruntime = resolve_backend(checkpoint, backend) == 'onnxruntime'
    if bf16 in (True, 'on') and use_onnxruntime:
        raise ValueError(
            f'bf16: {checkpoint} runs on onnxruntime, in the precision of the export '
            '(float32); bf16 is for the PyTorch backend'
        )
    if bf16 in (True, 'on') and not inference_mode:
        raise ValueError('bf16 needs inference_mode=True (it converts the inference model)')
    if use_onnxruntime:
        return onnxruntime_detector(
            config,
            checkpoint,
            device=device,
            onnx_file=onnx_file,
            build_model=lambda: init_detector(
                config,
                checkpoint,
                device=device,
                palette=palette,
                allow_partial_load=allow_partial_load,
                backend='pytorch',
            ),
        )
    if onnx_file is not None:
        raise ValueError(f"onnx_file={onnx_file!r} is for backend='onnxruntime'")
    use_bf16 = resolve_bf16(bf16, device) if inference_mode else False
    backbone = config.model.get('backbone')
    if isinstance(backbone, dict) and 'init_cfg' in backbone:
        backbone.init_cfg = None  # no pretrained download: the checkpoint holds the weights
    scope = config.get('default_scope', 'ai4rs')
    if scope is not None:
        init_default_scope(scope)
    from ai4rs.utils import register_all_modules

    register_all_modules(init_default_scope=False)
    model = revert_sync_batchnorm(MODELS.build(config.model))
    dataset_meta = None
    if checkpoint is not None:
        partial = allow_partial_load or bool(config.get(PARTIAL_LOAD_KEY, False))
        ckpt = load_checkpoint_checked(
            model, checkpoint, allow_partial_load=partial, map_location='cpu'
        )
        dataset_meta = ckpt.get('meta', {}).get('dataset_meta') if isinstance(ckpt, dict) else None
    else:
        model.init_weights()
    if dataset_meta is None:
        dataset_meta = config_dataset_meta(config)
    model.dataset_meta = dataset_meta or {}
    model.cfg = config
    model.to(device)
    model.eval()
    if inference_mode:
        channels_last = resolve_channels_last(channels_last, device)
        to_inference_mode(model, fuse=True, channels_last=channels_last, bf16=use_bf16)
    return model


def is_open_vocabulary(model) -> bool:
    """Whether ``model``'s labels index a vocabulary of texts (its ``takes_texts``)."""
    return bool(model.takes_texts)


def model_vocabulary(model, texts=None) -> list[str] | None:
    """The K prompts an open-vocabulary ``model`` will score: ``texts`` when given
    (any form :func:`as_vocabulary` accepts), else the vocabulary baked in by
    ``reparameterize``; None for a closed-set model.

    Raises:
        ValueError: ``texts`` given to a closed-set model, an empty vocabulary,
            or an open-vocabulary model with neither texts nor a baked-in
            vocabulary.
    """
    if not is_open_vocabulary(model):
        if texts is not None:
            raise ValueError(
                f'texts are for open-vocabulary (YOLO-World) models; '
                f'{type(model).__name__} has a fixed set of classes'
            )
        return None
    if texts is None:
        if model.vocabulary:
            return list(model.vocabulary)
        raise ValueError(
            f'{type(model).__name__} needs a vocabulary: pass texts=[...] '
            '(e.g. ["person", "dog"]) or bake one in with '
            'model.reparameterize(texts)'
        )
    from ai4rs.models.detectors.yolo_world import as_vocabulary

    if isinstance(texts, str):
        raise TypeError(
            'texts must be a list of strings, not one string '
            f'({texts!r}); e.g. texts=["person", "dog"]'
        )
    vocab = as_vocabulary(texts)
    if not vocab:
        raise ValueError('texts is empty: give at least one prompt')
    return vocab


def inference_detector(
    model, imgs, texts=None, test_pipeline=None, batch_size=1, prompt_embeddings=None
):
    """Run ``model`` on one image or a list of images.

    Args:
        model (nn.Module): from :func:`init_detector`.
        imgs (str | ndarray | list): image file(s) or BGR uint8 array(s) (H, W, 3).
        texts (list, optional): the vocabulary of an open-vocabulary (YOLO-World)
            model, used for every image: K strings, ``[[t1, ..., tK]]`` or
            upstream's class-text form ``[[t1], ..., [tK]]``. Optional for a
            model with a vocabulary baked in by ``reparameterize``; not allowed
            for closed-set models. Each string goes through the pipeline's
            ``LoadText`` (its ``prompt_format``) and is stored as the data
            sample's ``texts``; predicted labels index these K prompts.
        test_pipeline (Compose, optional): overrides the config's test pipeline.
        batch_size (int): images per forward pass. Images whose pipeline
            outputs have the same size (always so for the YOLO letterbox
            pipelines; DOTA patches of one size) run together, up to
            ``batch_size`` at a time; each prediction is mapped back to its own
            image by its own metadata, so results equal one-by-one inference
            (within float rounding of the batched convolutions). Images of
            different sizes are never padded into one batch (padding would
            change the network's border features). Defaults to 1.
        prompt_embeddings (dict | str, optional): ``{class: (D,) tensor}`` or the path
            of a saved ``.pt`` file of them (image prompts:
            ``tools/misc/generate_image_prompts.py``): the classes of ``texts`` found
            there use these embeddings instead of the text model's, the others the text
            model (a vocabulary mixes both). Without ``texts`` the vocabulary is the
            table's classes. See :mod:`ai4rs.apis.image_prompts`.

    Returns:
        DetDataSample | list[DetDataSample]: one per image, in input order, with
        ``pred_instances`` (``bboxes``, ``scores``, ``labels``) in the
        original image's coordinates. A single input gives a single sample.

    A model in inference mode (:func:`init_detector`'s default) runs under
    ``torch.inference_mode()``, an eager one under ``torch.no_grad()``.

    The text embeddings of the vocabulary are computed once per call and kept
    by the (frozen) text model's per-string cache, so a later call with the
    same vocabulary does not run CLIP again.
    """
    if prompt_embeddings is not None:
        from .image_prompts import load_prompt_embeddings, prompt_embeddings_installed
        from .pipeline import text_prompt_format

        table = (
            load_prompt_embeddings(prompt_embeddings)
            if isinstance(prompt_embeddings, str)
            else dict(prompt_embeddings)
        )
        if not is_open_vocabulary(model):
            raise ValueError(
                f'prompt_embeddings are for open-vocabulary (YOLO-World) models; '
                f'{type(model).__name__} has a fixed set of classes'
            )
        vocab = model_vocabulary(model, list(table) if texts is None else texts)
        with prompt_embeddings_installed(model, table, vocab, text_prompt_format(model.cfg)):
            return inference_detector(model, imgs, vocab, test_pipeline, batch_size)
    single = not isinstance(imgs, (list, tuple))
    imgs = [imgs] if single else list(imgs)
    vocab = model_vocabulary(model, texts)
    if not imgs:
        return []
    pipelines = {}

    def pipeline_for(from_array):
        if test_pipeline is not None:
            return test_pipeline
        if from_array not in pipelines:
            pipelines[from_array] = build_inference_pipeline(
                model.cfg, from_array, with_texts=vocab is not None
            )
        return pipelines[from_array]

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f'batch_size must be a positive integer, got {batch_size!r}')

    def prepared(i, img):
        data = pipeline_input(img, i, vocab)
        data = pipeline_for(isinstance(img, np.ndarray))(data)
        if vocab is not None and 'texts' not in data['data_samples']:
            data['data_samples'].texts = list(vocab)
        return data

    results = [None] * len(imgs)
    # pending[shape] = [(index, data), ...]: images waiting for a full batch of their size
    pending: dict[tuple, list] = {}

    def run(group):
        batch = dict(
            inputs=[data['inputs'] for _, data in group],
            data_samples=[data['data_samples'] for _, data in group],
        )
        # inference tensors (faster) only for an inference model: an eager model may be
        # trained afterwards, and its text model caches the embeddings computed here
        with torch.inference_mode() if is_inference_mode(model) else torch.no_grad():
            outputs = model.test_step(batch)
        for (index, _), out in zip(group, outputs):
            results[index] = out

    for i, img in enumerate(imgs):
        data = prepared(i, img)
        group = pending.setdefault(tuple(data['inputs'].shape), [])
        group.append((i, data))
        if len(group) == batch_size:
            run(pending.pop(tuple(data['inputs'].shape)))
    for group in pending.values():
        run(group)
    return results[0] if single else results
