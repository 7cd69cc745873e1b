"""Python bindings for libsimclr (SimCLR self-supervised learning in C), on ctypes.

    import numpy as np, simclr
    with simclr.Context() as ctx:
        enc = simclr.ResNet(ctx, depth=18, width=16, in_channels=1, stem="cifar")
        feats = enc.forward(np.random.rand(8, 1, 28, 28).astype(np.float32))  # [8, 128]

The shared library is found through SIMCLR_LIBRARY, next to this package, in
the source tree's lib/, or on the system path; its version must have the
bindings' major and at least their minor. Every failing call raises a
subclass of SimclrError carrying simclr_last_error().
"""
from ._lib import BINDINGS_VERSION, has, last_error, library_path, status_string
from ._lib import version_number, version_string
from .augment import Augment, bounds as augment_bounds
from .core import Context, Tensor, backends, isa_supported
from .data import Dataset, label_subset, load_label_subset, save_label_subset
from .enums import (AugParam, AugPreset, DType, EmbedParam, LogLevel, MocoParam, Mode, OptKind, OptParam,
                    Stat, Status, Stem, PARAM_BUFFER, PARAM_NO_DECAY)
from .enums import BnMode, TrainerParam
from .enums import ConvAlgo, CtxParam
from .enums import VitPool, VitPreset
from .enums import ClassifierParam, LossParam, SwavParam
from .errors import (Cancelled, FormatError, InternalError, InvalidArgument, LibraryVersionError,
                     NumericError, OutOfMemory, ShapeError, SimclrError, SimclrIOError, StateError,
                     Unsupported, STATUS_EXCEPTIONS)
from .embed import Classifier, Embedder
from .evaluation import classification_metrics, extract_features, knn_eval, linear_probe, linear_probe_select
from .loss import CrossEntropy, Distill, NTXent
from .modules import (LinearHead, MLPHead, Module, Parameter, ResNet, SwavPrototypes, ViT,
                      export_classifier_safetensors)
from .optim import Optimizer, lr_linear_scaling, lr_sqrt_scaling
from .trainer import FinetuneTrainer, MocoTrainer, SwavTrainer, Trainer

__version__ = "%d.%d.%d" % BINDINGS_VERSION

__all__ = [
    "Augment", "AugParam", "AugPreset", "BnMode", "Cancelled", "ConvAlgo", "Context", "CtxParam", "Dataset", "DType",
    "EmbedParam", "Embedder", "FormatError", "InternalError", "InvalidArgument", "LibraryVersionError", "LogLevel",
    "MLPHead", "MocoParam",
    "FinetuneTrainer", "MocoTrainer", "Mode",
    "Module", "NTXent", "NumericError", "OptKind", "OptParam", "Optimizer", "OutOfMemory",
    "PARAM_BUFFER", "PARAM_NO_DECAY", "Parameter", "ResNet", "STATUS_EXCEPTIONS", "ShapeError",
    "SimclrError", "SimclrIOError", "Stat", "StateError", "Status", "Stem", "SwavParam", "SwavPrototypes",
    "SwavTrainer", "Tensor", "Trainer", "TrainerParam",
    "Unsupported", "ViT", "VitPool", "VitPreset", "augment_bounds", "backends", "extract_features", "isa_supported", "has", "knn_eval",
    "last_error", "library_path", "linear_probe", "linear_probe_select", "lr_linear_scaling", "lr_sqrt_scaling",
    "status_string", "version_number", "version_string",
    # issue 25: fine-tuning and distillation pieces
    "Classifier", "ClassifierParam", "CrossEntropy", "Distill", "LinearHead", "LossParam", "classification_metrics",
    "export_classifier_safetensors", "label_subset", "load_label_subset", "save_label_subset",
]
