"""Fixtures of the model tests."""
import pytest
from yolox_builders import build_rotated_yolox


@pytest.fixture
def tiny_yolox():
    return build_rotated_yolox('tiny')
