"""YOLO-World's ``MultiModalDataset``: a detection dataset whose samples carry class texts."""

import copy
from collections.abc import Callable, Sequence

from mmengine.dataset import BaseDataset, Compose, force_full_init

from ai4rs.registry import DATASETS

from .class_texts import load_class_texts
from .file_checks import ImageDecodeError, handle_bad_image
from .refetch import SeededRefetchMixin
from .samplers.seeded_sampler import sample_rng


@DATASETS.register_module()
class MultiModalDataset(SeededRefetchMixin):
    """Wrap a detection dataset and add ``texts`` (the class vocabulary) to each sample.

    ``get_data_info(idx)`` is the wrapped dataset's data dict plus ``texts``: the list of
    ``class_text_path``'s entries (``texts[label]`` = the strings of class ``label``). The
    pipeline is this wrapper's (the wrapped dataset's own pipeline is not used). A training
    sample (wrapped dataset not in test mode, or ``test_mode=False``) also carries
    ``dataset`` = this wrapper, from which Mosaic/MixUp draw other samples (with their texts).

    Args:
        dataset (BaseDataset | dict): the dataset or its config.
        class_text_path (str, optional): class-text json (see
            :mod:`ai4rs.datasets.class_texts`), as many entries as the dataset's classes.
            None: no ``texts`` are added.
        test_mode (bool): see above. Defaults to True (as upstream).
        pipeline (list[dict | callable]): the transforms.
        lazy_init (bool): defer ``full_init``. Defaults to False.
        max_refetch (int): in training, how many other samples are drawn when one yields
            ``None`` (a skipped bad image, or a transform that drops the sample). Defaults to
            1000 (mmengine's).

    Raises:
        TypeError: ``dataset`` is neither a dict nor a ``BaseDataset``.
        FileNotFoundError / ValueError: from :func:`load_class_texts` (missing file, bad
            format, or a class count that differs from the dataset's).
    """

    def __init__(
        self,
        dataset: BaseDataset | dict,
        class_text_path: str | None = None,
        test_mode: bool = True,
        pipeline: Sequence[dict | Callable] = (),
        lazy_init: bool = False,
        max_refetch: int = 1000,
    ) -> None:
        if isinstance(dataset, dict):
            self.dataset = DATASETS.build(dataset)
        elif isinstance(dataset, BaseDataset):
            self.dataset = dataset
        else:
            raise TypeError(f'dataset must be a dict or a BaseDataset, but got {dataset!r}')
        self._metainfo = self.dataset.metainfo
        if class_text_path is not None:
            self.class_texts = load_class_texts(
                class_text_path, num_classes=len(self._metainfo['classes'])
            )
        else:
            self.class_texts = None
        self.test_mode = test_mode
        self.max_refetch = max_refetch
        self.pipeline = Compose(list(pipeline))
        self._fully_initialized = False
        if not lazy_init:
            self.full_init()

    @property
    def metainfo(self) -> dict:
        return copy.deepcopy(self._metainfo)

    def full_init(self) -> None:
        """Fully initialise the wrapped dataset."""
        if self._fully_initialized:
            return
        self.dataset.full_init()
        self._ori_len = len(self.dataset)
        self._fully_initialized = True

    @force_full_init
    def get_data_info(self, idx: int) -> dict:
        """The wrapped dataset's data dict of ``idx`` plus ``texts`` (list[list[str]])."""
        data_info = self.dataset.get_data_info(idx)
        if self.class_texts is not None:
            data_info['texts'] = self.class_texts
        return data_info

    def get_cat_ids(self, idx: int) -> list[int]:
        """Labels of sample ``idx`` (delegated to the wrapped dataset)."""
        return self.dataset.get_cat_ids(idx)

    @property
    def refetch_allowed(self) -> bool:
        """Training: the wrapped dataset is not in test mode, or ``test_mode=False``."""
        return not getattr(self.dataset, 'test_mode', True) or not self.test_mode

    def describe_sample(self, idx: int) -> str:
        path = self.dataset.get_data_info(idx).get('img_path')
        return f'{type(self).__name__}({type(self.dataset).__name__}) sample {int(idx)} ({path})'

    def prepare_data(self, idx: int):
        """The pipeline's output for sample ``idx``, under the sample's seed (:func:`sample_rng`,
        with ai4rs' ``DefaultSampler``). An undecodable image raises, naming the file, unless
        the wrapped dataset has ``skip_bad_images=True`` and this is training (then ``None``,
        and ``__getitem__`` draws another sample from this one's seed:
        :class:`~ai4rs.datasets.refetch.SeededRefetchMixin`)."""
        return self._prepare(idx, self.refetch_allowed)

    def _prepare(self, idx: int, training: bool):
        data_info = self.get_data_info(idx)
        if training:
            data_info['dataset'] = self
        try:
            with sample_rng(idx):
                return self.pipeline(data_info)
        except ImageDecodeError as e:
            name = f'{type(self).__name__}({type(self.dataset).__name__})'
            return handle_bad_image(
                e, name, getattr(self.dataset, 'skip_bad_images', False), not training
            )

    @force_full_init
    def __len__(self) -> int:
        return self._ori_len
