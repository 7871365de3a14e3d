from .inference import inference_detector, init_detector
from .sliced_inference import inference_detector_by_patches

__all__ = ['init_detector', 'inference_detector', 'inference_detector_by_patches']
from .inference import is_open_vocabulary, model_vocabulary  # noqa: E402

__all__ += ['is_open_vocabulary', 'model_vocabulary']

# whole scenes (the reader and the layer writer need the `geo` extra; imported when called)
from .scene_inference import inference_scene, write_scene_detections  # noqa: E402

__all__ += ['inference_scene', 'write_scene_detections']
