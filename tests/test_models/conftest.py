"""Fixtures of the model tests."""

import pytest

from tests.test_models.yolox_builders import build_rotated_yolox


@pytest.fixture
def tiny_yolox():
    return build_rotated_yolox('tiny')
