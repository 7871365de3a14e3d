"""MlvlPointGenerator, PseudoAngleCoder and PseudoSampler."""

import torch
from mmengine.structures import InstanceData

from ai4rs.models.task_modules import (
    AssignResult,
    MlvlPointGenerator,
    PseudoAngleCoder,
    PseudoSampler,
)
from ai4rs.registry import TASK_UTILS


def test_point_generator_yolox_priors():
    gen = MlvlPointGenerator([8, 16], offset=0)
    level0, level1 = gen.grid_priors([(2, 3), (1, 2)], with_stride=True)
    # row-major, x fastest: (col * s, row * s, s, s)
    assert level0.tolist() == [
        [0, 0, 8, 8],
        [8, 0, 8, 8],
        [16, 0, 8, 8],
        [0, 8, 8, 8],
        [8, 8, 8, 8],
        [16, 8, 8, 8],
    ]
    assert level1.tolist() == [[0, 0, 16, 16], [16, 0, 16, 16]]
    centre = MlvlPointGenerator([(8, 4)]).grid_priors([(1, 2)])[0]  # (w, h) stride pair
    assert centre.tolist() == [[4, 2], [12, 2]]
    assert gen.num_levels == 2 and gen.num_base_priors == [1, 1]
    flags = gen.valid_flags([(2, 3), (1, 2)], pad_shape=(9, 12))
    # ceil(9 / 8) = 2 rows and ceil(12 / 8) = 2 columns are valid on level 0
    assert flags[0].tolist() == [True, True, False, True, True, False]
    assert flags[1].tolist() == [True, False]


def test_pseudo_angle_coder_is_identity():
    coder = TASK_UTILS.build(dict(type='PseudoAngleCoder'))
    assert isinstance(coder, PseudoAngleCoder) and coder.encode_size == 1
    angles = torch.tensor([[0.3], [-1.2]])
    assert torch.equal(coder.encode(angles), angles)
    assert coder.decode(angles).shape == (2,)
    assert coder.decode(angles, keepdim=True).shape == (2, 1)


def test_pseudo_sampler():
    gt_bboxes = torch.tensor([[1.0, 1.0, 2.0, 2.0, 0.0], [5.0, 5.0, 2.0, 2.0, 0.0]])
    result = AssignResult(
        2, torch.tensor([0, 2, 0, 1, 2]), torch.zeros(5), labels=torch.tensor([-1, 4, -1, 3, 4])
    )
    pred = InstanceData(priors=torch.arange(20.0).view(5, 4))
    sampling = PseudoSampler().sample(result, pred, InstanceData(bboxes=gt_bboxes))
    assert sampling.pos_inds.tolist() == [1, 3, 4]
    assert sampling.neg_inds.tolist() == [0, 2]
    assert sampling.pos_assigned_gt_inds.tolist() == [1, 0, 1]
    assert torch.equal(sampling.pos_gt_bboxes, gt_bboxes[[1, 0, 1]])
    assert sampling.pos_gt_labels.tolist() == [4, 3, 4]
    assert torch.equal(sampling.pos_priors, pred.priors[[1, 3, 4]])
