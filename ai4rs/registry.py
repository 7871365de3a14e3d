"""ai4rs registries: children of mmengine's root registries, scope ``ai4rs``.

Every kind of object a config can name has a registry here. Each one is a
child of the mmengine root of the same kind, so a name that ai4rs does not
define (``LoadImageFromFile`` from mmcv, ``SGD`` from torch, ``CheckpointHook``
from mmengine) is still found through the parent. ``locations`` lists the
modules that register into each registry; they are imported on first use, so
``MODELS.build(dict(type='YOLOX', ...))`` works without importing
``ai4rs.models`` by hand.
"""

from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import EVALUATOR as MMENGINE_EVALUATOR
from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import INFERENCERS as MMENGINE_INFERENCERS
from mmengine.registry import LOG_PROCESSORS as MMENGINE_LOG_PROCESSORS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import RUNNER_CONSTRUCTORS as MMENGINE_RUNNER_CONSTRUCTORS
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.registry import TASK_UTILS as MMENGINE_TASK_UTILS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import WEIGHT_INITIALIZERS as MMENGINE_WEIGHT_INITIALIZERS
from mmengine.registry import Registry

SCOPE = 'ai4rs'

# runners and their constructors
RUNNERS = Registry('runner', parent=MMENGINE_RUNNERS, locations=['ai4rs.engine'])
RUNNER_CONSTRUCTORS = Registry(
    'runner constructor', parent=MMENGINE_RUNNER_CONSTRUCTORS, locations=['ai4rs.engine']
)
# training / validation / test loops
LOOPS = Registry('loop', parent=MMENGINE_LOOPS, locations=['ai4rs.engine'])
# hooks such as YOLOXModeSwitchHook
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, locations=['ai4rs.engine.hooks'])

# datasets, their transforms and samplers
DATASETS = Registry('dataset', parent=MMENGINE_DATASETS, locations=['ai4rs.datasets'])
DATA_SAMPLERS = Registry(
    'data sampler', parent=MMENGINE_DATA_SAMPLERS, locations=['ai4rs.datasets']
)
TRANSFORMS = Registry(
    'transform', parent=MMENGINE_TRANSFORMS, locations=['ai4rs.datasets.transforms']
)

# models: backbones, necks, heads, detectors, losses, data preprocessors
MODELS = Registry('model', parent=MMENGINE_MODELS, locations=['ai4rs.models'])
MODEL_WRAPPERS = Registry(
    'model_wrapper', parent=MMENGINE_MODEL_WRAPPERS, locations=['ai4rs.models']
)
WEIGHT_INITIALIZERS = Registry(
    'weight initializer', parent=MMENGINE_WEIGHT_INITIALIZERS, locations=['ai4rs.models']
)

# optimizers, their wrappers and constructors, and parameter schedulers
OPTIMIZERS = Registry(
    'optimizer', parent=MMENGINE_OPTIMIZERS, locations=['ai4rs.engine.optimizers']
)
OPTIM_WRAPPERS = Registry(
    'optim_wrapper', parent=MMENGINE_OPTIM_WRAPPERS, locations=['ai4rs.engine.optimizers']
)
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer constructor',
    parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS,
    locations=['ai4rs.engine.optimizers'],
)
PARAM_SCHEDULERS = Registry(
    'parameter scheduler', parent=MMENGINE_PARAM_SCHEDULERS, locations=['ai4rs.engine.schedulers']
)

# metrics and evaluators
METRICS = Registry('metric', parent=MMENGINE_METRICS, locations=['ai4rs.evaluation'])
EVALUATOR = Registry('evaluator', parent=MMENGINE_EVALUATOR, locations=['ai4rs.evaluation'])

# assigners, samplers, box coders, prior generators, IoU calculators
TASK_UTILS = Registry(
    'task util',
    parent=MMENGINE_TASK_UTILS,
    locations=['ai4rs.models.task_modules', 'ai4rs.datasets'],
)  # + BatchShapePolicy

# visualisation
VISUALIZERS = Registry('visualizer', parent=MMENGINE_VISUALIZERS, locations=['ai4rs.visualization'])
VISBACKENDS = Registry(
    'vis_backend', parent=MMENGINE_VISBACKENDS, locations=['ai4rs.visualization']
)

# log processors, inferencers and plain functions (e.g. collate functions)
LOG_PROCESSORS = Registry(
    'log_processor', parent=MMENGINE_LOG_PROCESSORS, locations=['ai4rs.engine']
)
INFERENCERS = Registry('inferencer', parent=MMENGINE_INFERENCERS, locations=['ai4rs.apis'])
FUNCTIONS = Registry('function', parent=MMENGINE_FUNCTIONS, locations=['ai4rs.datasets'])

ALL_REGISTRIES = dict(
    RUNNERS=RUNNERS,
    RUNNER_CONSTRUCTORS=RUNNER_CONSTRUCTORS,
    LOOPS=LOOPS,
    HOOKS=HOOKS,
    DATASETS=DATASETS,
    DATA_SAMPLERS=DATA_SAMPLERS,
    TRANSFORMS=TRANSFORMS,
    MODELS=MODELS,
    MODEL_WRAPPERS=MODEL_WRAPPERS,
    WEIGHT_INITIALIZERS=WEIGHT_INITIALIZERS,
    OPTIMIZERS=OPTIMIZERS,
    OPTIM_WRAPPERS=OPTIM_WRAPPERS,
    OPTIM_WRAPPER_CONSTRUCTORS=OPTIM_WRAPPER_CONSTRUCTORS,
    PARAM_SCHEDULERS=PARAM_SCHEDULERS,
    METRICS=METRICS,
    EVALUATOR=EVALUATOR,
    TASK_UTILS=TASK_UTILS,
    VISUALIZERS=VISUALIZERS,
    VISBACKENDS=VISBACKENDS,
    LOG_PROCESSORS=LOG_PROCESSORS,
    INFERENCERS=INFERENCERS,
    FUNCTIONS=FUNCTIONS,
)
