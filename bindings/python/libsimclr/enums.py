"""The header's enums as IntEnums (member names without the SIMCLR_ prefix parts).

Generated once from include/simclr.h; tests/python/test_bindings_sync.py checks
every name and value against the header."""
from enum import IntEnum


class Status(IntEnum):
    """C enum simclr_status."""
    OK = 0
    E_INVALID = 1
    E_SHAPE = 2
    E_NOMEM = 3
    E_IO = 4
    E_FORMAT = 5
    E_NUMERIC = 6
    E_UNSUPPORTED = 7
    E_STATE = 8
    E_INTERNAL = 9
    E_CANCELLED = 10


class LogLevel(IntEnum):
    """C enum simclr_log_level."""
    ERROR = 0
    WARN = 1
    INFO = 2
    DEBUG = 3


class DType(IntEnum):
    """C enum simclr_dtype."""
    F32 = 0
    U8 = 1


class Stem(IntEnum):
    """C enum simclr_stem."""
    CIFAR = 0
    IMAGENET = 1


class Mode(IntEnum):
    """C enum simclr_mode."""
    EVAL = 0
    TRAIN = 1


class AugPreset(IntEnum):
    """C enum simclr_augment_preset (0.1 name: simclr_aug_preset, an alias in the header)."""
    NONE = 0
    SIMCLR_V1 = 1
    CIFAR = 2
    GRAYSCALE = 3
    FINETUNE = 4


class AugParam(IntEnum):
    """C enum simclr_augment_param (0.1 name: simclr_aug_param, an alias in the header)."""
    CROP_P = 100
    CROP_SCALE_MIN = 101
    CROP_SCALE_MAX = 102
    CROP_RATIO_MIN = 103
    CROP_RATIO_MAX = 104
    CROP_ATTEMPTS = 105
    INTERPOLATION = 106
    ANTIALIAS = 107
    FLIP_P = 200
    JITTER_P = 300
    JITTER_STRENGTH = 301
    BRIGHTNESS = 302
    CONTRAST = 303
    SATURATION = 304
    HUE = 305
    GRAYSCALE_P = 400
    BLUR_P = 500
    BLUR_SIGMA_MIN = 501
    BLUR_SIGMA_MAX = 502
    BLUR_KERNEL_FRAC = 503
    SOLARIZE_P = 600
    SOLARIZE_THRESHOLD = 601
    ERASE_P = 700
    ERASE_SCALE_MIN = 701
    ERASE_SCALE_MAX = 702
    ERASE_RATIO_MIN = 703
    ERASE_RATIO_MAX = 704
    ERASE_VALUE = 705
    NORMALIZE = 800
    MEAN_0 = 801
    MEAN_1 = 802
    MEAN_2 = 803
    STD_0 = 804
    STD_1 = 805
    STD_2 = 806


class OptKind(IntEnum):
    """C enum simclr_optimizer_kind (0.1 name: simclr_opt_kind, an alias in the header)."""
    SGD = 0
    ADAMW = 1
    LARS = 2


class OptParam(IntEnum):
    """C enum simclr_optimizer_param (0.1 name: simclr_opt_param, an alias in the header)."""
    LR = 100
    MOMENTUM = 101
    NESTEROV = 102
    WEIGHT_DECAY = 103
    EXCLUDE_NO_DECAY = 104
    BETA1 = 200
    BETA2 = 201
    EPS = 202
    LARS_ETA = 300
    WARMUP_STEPS = 400
    TOTAL_STEPS = 401
    STEP = 402


class Stat(IntEnum):
    """C enum simclr_trainer_stat_key (0.1 name: simclr_stat, an alias in the header)."""
    LOSS = 100
    ACCURACY = 101
    LR = 102
    GRAD_NORM = 103
    IMAGES_PER_SEC = 104
    STEP = 105
    COMM_BYTES = 200
    MICRO_BATCHES = 201


class BnMode(IntEnum):
    """C enum simclr_bn_mode."""
    LOCAL = 0
    SYNC = 1
    FROZEN = 2


class TrainerParam(IntEnum):
    """C enum simclr_trainer_param."""
    MICRO_BATCH = 100
    BN_MODE = 200
    BUCKET_BYTES = 300
    FREEZE_ENCODER = 400


class EmbedParam(IntEnum):
    """C enum simclr_embedder_param (older name simclr_embed_param, an alias in the header)."""
    RESIZE = 100
    BATCH = 101
    NORMALIZE = 200
    MEAN_0 = 201
    MEAN_1 = 202
    MEAN_2 = 203
    STD_0 = 204
    STD_1 = 205
    STD_2 = 206


class MocoParam(IntEnum):
    """C enum simclr_moco_param."""
    MOMENTUM = 100
    MOMENTUM_STEPS = 101
    TEMPERATURE = 200
    KEY_SPLITS = 300
    QUEUE_SIZE = 400
    QUEUE_POS = 401


class SwavParam(IntEnum):
    """C enum simclr_swav_param."""
    TEMPERATURE = 100
    EPSILON = 200
    SINKHORN_ITERATIONS = 201
    FREEZE_PROTOTYPES_STEPS = 300
    PROTOTYPES = 400
    QUEUE_LENGTH = 500
    CODE_VIEWS = 501


class CtxParam(IntEnum):
    """C enum simclr_context_param (older name simclr_ctx_param, an alias in the header)."""
    CONV_ALGO = 100


class ConvAlgo(IntEnum):
    """C enum simclr_conv_algo."""
    AUTO = 0
    DIRECT = 1
    WINOGRAD = 2


PARAM_NO_DECAY = 1
PARAM_BUFFER = 2
MAX_DIMS = 4


class VitPool(IntEnum):
    """C enum simclr_vit_pool."""
    CLS = 0
    MEAN = 1


class VitPreset(IntEnum):
    """C enum simclr_vit_preset."""
    TINY_16 = 1
    SMALL_16 = 2
    TINY_CIFAR = 3
    SMALL_CIFAR = 4


class LossParam(IntEnum):
    """C enum simclr_loss_param."""
    TEMPERATURE = 100
    N_VIEWS = 101
    CLASSES = 200
    LABEL_SMOOTHING = 201
    LABEL_WEIGHT = 300
    TEMPERATURE_SCALE = 301


# C enum simclr_classifier_param: the evaluation transform's keys are the
# embedder's, with the same values, plus the classifier's own.
ClassifierParam = IntEnum("ClassifierParam", [(m.name, m.value) for m in EmbedParam] + [("CLASSES", 300)],
                          module=__name__)
ClassifierParam.__doc__ = "C enum simclr_classifier_param (the transform's keys are the embedder's values)."
