"""LoadImageFromFile: mmcv's transform, keeping the bit depth and naming undecodable files."""

import numpy as np
from mmcv.transforms import LoadImageFromFile as MMCV_LoadImageFromFile
from mmengine import fileio

from ai4rs.datasets.file_checks import ImageDecodeError
from ai4rs.datasets.image_io import decode_image, normalize_to_uint8_rule, to_uint8
from ai4rs.registry import TRANSFORMS


@TRANSFORMS.register_module()
class LoadImageFromFile(MMCV_LoadImageFromFile):
    """Load ``results['img_path']`` into ``results['img']`` (mmcv's, with two changes).

    1. An image deeper than 8 bits (16-bit PNG/TIFF holding 11/12/16-bit
       data, float TIFF) is decoded at its depth and brought to uint8 by the
       explicit ``to_uint8`` rule (see :mod:`ai4rs.datasets.image_io`), not by
       OpenCV's keep-the-high-byte conversion. 8-bit images load exactly as
       with mmcv.
    2. A file that exists but cannot be decoded raises
       :class:`ai4rs.datasets.file_checks.ImageDecodeError` naming it (mmcv:
       ``AssertionError: failed to load image``); the dataset adds its name.

    Sets ``img`` (H, W, 3) BGR uint8 (float32 with ``to_float32``),
    ``img_shape`` and ``ori_shape`` (h, w).

    Args:
        to_uint8 (str | dict | None): ``'bit_depth'`` (default: scale by the
            image's bit depth), ``dict(type='bit_depth', bits=12)``,
            ``'percentile'`` / ``dict(type='percentile', low=2, high=98,
            nodata=0)`` (per-band stretch), or ``None`` (keep the depth).
        Others: as mmcv's ``LoadImageFromFile`` (``to_float32``,
            ``color_type``, ``imdecode_backend``, ``file_client_args``,
            ``ignore_empty``, ``backend_args``).
    """

    def __init__(
        self,
        to_float32: bool = False,
        color_type: str = 'color',
        imdecode_backend: str = 'cv2',
        file_client_args: dict | None = None,
        ignore_empty: bool = False,
        *,
        backend_args: dict | None = None,
        to_uint8='bit_depth',
    ) -> None:
        super().__init__(
            to_float32=to_float32,
            color_type=color_type,
            imdecode_backend=imdecode_backend,
            file_client_args=file_client_args,
            ignore_empty=ignore_empty,
            backend_args=backend_args,
        )
        normalize_to_uint8_rule(to_uint8)  # a wrong rule fails when the pipeline is built
        self.to_uint8 = to_uint8

    def _read_bytes(self, filename: str) -> bytes:
        if self.file_client_args is not None:
            client = fileio.FileClient.infer_client(self.file_client_args, filename)
            return client.get(filename)
        return fileio.get(filename, backend_args=self.backend_args)

    def transform(self, results: dict) -> dict | None:
        filename = results['img_path']
        try:
            img = decode_image(
                self._read_bytes(filename), filename, self.color_type, self.imdecode_backend
            )
        except (OSError, ImageDecodeError):
            if self.ignore_empty:
                return None
            raise
        img = to_uint8(img, self.to_uint8)
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f', to_uint8={self.to_uint8!r})'
