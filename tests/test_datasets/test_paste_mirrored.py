"""YOLOv5CopyPaste's paste step (OpenCV flip + masked copy) equals the boolean-index form."""

import numpy as np
import pytest

from ai4rs.datasets.transforms.yolo_transforms import paste_mirrored


@pytest.mark.parametrize(
    'shape,dtype',
    [
        ((37, 53, 3), np.uint8),
        ((37, 53), np.uint8),
        ((40, 41, 3), np.float32),
        ((20, 30, 5), np.uint8),
        ((20, 30, 1), np.uint16),
    ],
)
@pytest.mark.parametrize('contiguous', [True, False])
@pytest.mark.parametrize('mask_kind', ['dense', 'sparse', 'empty', 'blob', 'bool'])
def test_paste_mirrored_equals_boolean_indexing(shape, dtype, contiguous, mask_kind):
    rng = np.random.default_rng(sum(shape))
    img = (rng.random(shape) * 255).astype(dtype)
    h, w = shape[:2]
    density = dict(dense=0.3, sparse=0.003, empty=0.0, blob=0.0, bool=0.3)[mask_kind]
    mask = (rng.random(shape[:2]) < density).astype(np.uint8)
    if mask_kind == 'blob':  # one region across the middle: it overlaps its own mirror
        mask[h // 4 : h // 2, w // 3 : w - 2] = 1
    if mask_kind == 'bool':
        mask = mask.astype(bool)
    # reference: pixel (y, x) <- img[y, W-1-x] where mask[y, W-1-x] is set
    expected = img.copy()
    where = mask[:, ::-1].astype(bool)
    expected[where] = img[:, ::-1][where]
    src = img.copy() if contiguous else np.asfortranarray(img)
    out = paste_mirrored(src, mask)
    assert out.shape == img.shape and out.dtype == img.dtype
    np.testing.assert_array_equal(out, expected)
    if contiguous:  # written in place, as the transform did before
        assert out is src
