"""The data sample that carries one image's annotations and predictions."""

from mmengine.structures import BaseDataElement, InstanceData, PixelData


class DetDataSample(BaseDataElement):
    """mmdet's ``DetDataSample``: the interface between pipeline, model and metric.

    Fields (all optional):

    - ``gt_instances`` (InstanceData): ``bboxes`` (a box type or Tensor (N, 4|5|8)),
      ``labels`` (LongTensor (N,)).
    - ``ignored_instances`` (InstanceData): GT to be ignored (e.g. difficult
      objects), same fields as ``gt_instances``.
    - ``pred_instances`` (InstanceData): ``bboxes``, ``scores`` (N,), ``labels`` (N,).
    - ``proposals``, ``gt_panoptic_seg``, ``gt_sem_seg``: as in mmdet.

    Meta information (``img_path``, ``ori_shape``, ``img_shape``,
    ``scale_factor``, ``flip``...) is set with ``set_metainfo``.
    """

    def _instance_property(name):  # noqa: N805 - a property factory used in the class body
        def fget(self):
            return getattr(self, f'_{name}')

        def fset(self, value):
            self.set_field(value, f'_{name}', dtype=InstanceData)

        def fdel(self):
            delattr(self, f'_{name}')

        return property(fget, fset, fdel, doc=f'InstanceData: {name}.')

    gt_instances = _instance_property('gt_instances')
    pred_instances = _instance_property('pred_instances')
    ignored_instances = _instance_property('ignored_instances')
    proposals = _instance_property('proposals')
    pred_track_instances = _instance_property('pred_track_instances')
    del _instance_property

    @property
    def gt_sem_seg(self) -> PixelData:
        return self._gt_sem_seg

    @gt_sem_seg.setter
    def gt_sem_seg(self, value: PixelData):
        self.set_field(value, '_gt_sem_seg', dtype=PixelData)

    @gt_sem_seg.deleter
    def gt_sem_seg(self):
        del self._gt_sem_seg


SampleList = list
OptSampleList = list | None
