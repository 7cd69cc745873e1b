"""The SimCLR trainer: augment -> encoder -> head -> NT-Xent -> backward -> optimizer."""
from __future__ import annotations

import ctypes
from typing import Any, Dict, Union

import numpy as np

from . import _lib
from ._handle import Handle
from .augment import Augment
from .core import (Context, Tensor, as_input, check_context, check_enum, check_float, check_int,
                   check_path, check_seed, labels_array)
from .enums import DType, MocoParam, Stat, SwavParam, TrainerParam
from .loss import CrossEntropy, Distill, NTXent
from .modules import Module
from .optim import Optimizer

fn = _lib.fn


def _check_pieces(ctx: Context, *pieces: Any) -> None:
    """(name, object, class or tuple of classes) for each borrowed piece."""
    check_context(ctx)
    for name, obj, cls in pieces:
        if not isinstance(obj, cls):
            classes = cls if isinstance(cls, tuple) else (cls,)
            raise TypeError("%s must be a %s, not %s" % (
                name, " or ".join("simclr." + c.__name__ for c in classes), type(obj).__name__))


def _apply_settings(trainer: "Trainer", settings: Dict[str, float]) -> None:
    """Keyword settings at creation; the trainer is closed if one is refused."""
    try:
        for k, v in settings.items():
            trainer.set(k, v)
    except BaseException:
        trainer.close()
        raise


class Trainer(Handle):
    """One SimCLR step per call on a batch of uint8 images [N, H, W, C].

    The pieces are borrowed and kept alive by the trainer."""

    _what = "trainer"

    def __init__(self, ctx: Context, encoder: Module, head: Module, augment: Augment, loss: NTXent,
                 optimizer: Optimizer) -> None:
        _check_pieces(ctx, ("encoder", encoder, Module), ("head", head, Module),
                           ("augment", augment, Augment), ("loss", loss, NTXent),
                           ("optimizer", optimizer, Optimizer))
        out = ctypes.c_void_p()
        fn.trainer_create(ctx._ptr, encoder._ptr, head._ptr, augment._ptr, loss._ptr, optimizer._ptr,
                          ctypes.byref(out))
        self._init_native(out.value, _lib.cdll.simclr_trainer_destroy,
                          [ctx, encoder, head, augment, loss, optimizer])
        self.context, self.encoder, self.head = ctx, encoder, head
        self.augment, self.loss, self.optimizer = augment, loss, optimizer

    def step(self, images: Any, seed: int) -> float:
        """One step; returns the loss. NumericError leaves everything as before the call."""
        p = self._ptr
        x = as_input(self.context, images, DType.U8, "images")
        value = ctypes.c_float()
        fn.trainer_step(p, x._ptr, check_seed(seed), ctypes.byref(value))
        return float(value.value)

    def stat(self, key: Union[str, int, Stat]) -> float:
        """A statistic of the last step: "loss", "accuracy", "lr", "grad_norm",
        "images_per_sec", "step"."""
        v = ctypes.c_double()
        fn.trainer_stat(self._ptr, check_enum(key, Stat, "key"), ctypes.byref(v))
        return v.value

    def stats(self) -> Dict[str, float]:
        """Every statistic of the last step by name."""
        return {k.lower(): self.stat(v) for k, v in Stat.__members__.items()}

    def set(self, key: Union[str, int, TrainerParam], value: float) -> None:
        """A trainer setting: "micro_batch" (gradient caching, pairs per
        micro-batch, 0 = off), "bn_mode" (simclr.BnMode), "bucket_bytes"."""
        fn.trainer_set(self._ptr, check_enum(key, TrainerParam, "key"), float(value))

    def get(self, key: Union[str, int, TrainerParam]) -> float:
        v = ctypes.c_double()
        fn.trainer_get(self._ptr, check_enum(key, TrainerParam, "key"), ctypes.byref(v))
        return v.value

    def save(self, path: Any) -> None:
        """Checkpoint of encoder, head, optimizer state and counters (resumes bit-identically)."""
        fn.trainer_save(self._ptr, check_path(path))

    def load(self, path: Any) -> None:
        fn.trainer_load(self._ptr, check_path(path))


class MocoTrainer(Trainer):
    """MoCo v2 through the same step interface: ``step``, ``stat``, ``save`` and
    ``load`` as for SimCLR (include/simclr.h, "MoCo v2", gives every detail).

    ``MocoTrainer(ctx, encoder, head, key_encoder, key_head, augment, optimizer,
    queue_size=65536, seed=0, momentum=0.999, temperature=0.2, key_splits=8)``:
    the key modules have the architectures of encoder and head and receive
    their weights at creation; the optimizer covers encoder and head only.
    Keyword settings are MocoParam names in lower case; ``tr["momentum"]``
    reads and writes them too. The pieces are borrowed and kept alive."""

    def __init__(self, ctx: Context, encoder: Module, head: Module, key_encoder: Module,
                 key_head: Module, augment: Augment, optimizer: Optimizer, queue_size: int = 65536,
                 seed: int = 0, **settings: float) -> None:
        _check_pieces(ctx, ("encoder", encoder, Module), ("head", head, Module),
                           ("key_encoder", key_encoder, Module), ("key_head", key_head, Module),
                           ("augment", augment, Augment), ("optimizer", optimizer, Optimizer))
        out = ctypes.c_void_p()
        fn.moco_trainer_create(ctx._ptr, encoder._ptr, head._ptr, key_encoder._ptr, key_head._ptr,
                               augment._ptr, optimizer._ptr, check_int(queue_size, "queue_size"),
                               check_seed(seed), ctypes.byref(out))
        self._init_native(out.value, _lib.cdll.simclr_trainer_destroy,
                          [ctx, encoder, head, key_encoder, key_head, augment, optimizer])
        self.context, self.encoder, self.head = ctx, encoder, head
        self.key_encoder, self.key_head = key_encoder, key_head
        self.augment, self.loss, self.optimizer = augment, None, optimizer
        _apply_settings(self, settings)

    @staticmethod
    def _is_trainer_key(key: Any) -> bool:
        # The trainer's own settings (micro_batch, bn_mode, bucket_bytes) by
        # name or TrainerParam; a bare int stays a MocoParam (the two enums
        # share numbers).
        return isinstance(key, TrainerParam) or (isinstance(key, str) and key.upper() in TrainerParam.__members__)

    def set(self, key: Union[str, int, MocoParam, TrainerParam], value: float) -> None:
        """A MoCo setting (MocoParam) or a trainer setting ("micro_batch",
        "bn_mode", "bucket_bytes": every method runs them)."""
        if self._is_trainer_key(key):
            Trainer.set(self, key, value)
            return
        fn.moco_set(self._ptr, check_enum(key, MocoParam, "key"), check_float(value, "value"))

    def get(self, key: Union[str, int, MocoParam, TrainerParam]) -> float:
        if self._is_trainer_key(key):
            return Trainer.get(self, key)
        v = ctypes.c_double()
        fn.moco_get(self._ptr, check_enum(key, MocoParam, "key"), ctypes.byref(v))
        return v.value

    __getitem__ = get
    __setitem__ = set

    @property
    def queue(self) -> Tensor:
        """The trainer's queue, F32 [K, P] (``.numpy(copy=False)`` views it in place)."""
        out = ctypes.c_void_p()
        fn.moco_queue(self._ptr, ctypes.byref(out))
        return Tensor._borrowed(out.value, self, self.context)

    def key_order(self, n: int) -> np.ndarray:
        """The order in which the last step (of n images) fed its key views to the key modules."""
        order = np.zeros(check_int(n, "n"), dtype=np.int64)
        fn.moco_key_order(self._ptr, order.ctypes.data_as(ctypes.POINTER(ctypes.c_int64)), n)
        return order


class SwavTrainer(Trainer):
    """SwAV through the same step interface: ``step``, ``stat``, ``save`` and
    ``load`` as for SimCLR (include/simclr.h, "SwAV", gives every detail).

    ``SwavTrainer(ctx, encoder, head, prototypes, augment, optimizer,
    temperature=0.1, epsilon=0.05, ...)``: prototypes is a SwavPrototypes of
    the head's output size; the optimizer covers encoder, head and
    prototypes. Keyword settings are SwavParam names in lower case;
    ``tr["epsilon"]`` reads and writes them too. The pieces are borrowed and
    kept alive."""

    def __init__(self, ctx: Context, encoder: Module, head: Module, prototypes: Module, augment: Augment,
                 optimizer: Optimizer, **settings: float) -> None:
        _check_pieces(ctx, ("encoder", encoder, Module), ("head", head, Module),
                           ("prototypes", prototypes, Module), ("augment", augment, Augment),
                           ("optimizer", optimizer, Optimizer))
        out = ctypes.c_void_p()
        fn.swav_trainer_create(ctx._ptr, encoder._ptr, head._ptr, prototypes._ptr, augment._ptr, optimizer._ptr,
                               ctypes.byref(out))
        self._init_native(out.value, _lib.cdll.simclr_trainer_destroy,
                          [ctx, encoder, head, prototypes, augment, optimizer])
        self.context, self.encoder, self.head, self.prototypes = ctx, encoder, head, prototypes
        self.augment, self.loss, self.optimizer = augment, None, optimizer
        _apply_settings(self, settings)

    def set(self, key: Union[str, int, SwavParam], value: float) -> None:
        fn.swav_set(self._ptr, check_enum(key, SwavParam, "key"), check_float(value, "value"))

    def get(self, key: Union[str, int, SwavParam]) -> float:
        v = ctypes.c_double()
        fn.swav_get(self._ptr, check_enum(key, SwavParam, "key"), ctypes.byref(v))
        return v.value

    __getitem__ = get
    __setitem__ = set


class FinetuneTrainer(Trainer):
    """Supervised fine-tuning through the trainer (include/simclr.h,
    simclr_finetune_trainer_create): one view per image (the augment's view 0,
    normally AugPreset.FINETUNE), encoder + head in TRAIN mode, cross-entropy
    against the labels, backward, optimizer step. An optimizer over the head
    only freezes the encoder (``get("freeze_encoder")`` then reads 1).
    ``step(images, labels, seed)``; with a Distill loss the trainer is a
    distillation student: ``step_distill(images, teacher_encoder,
    teacher_head, labels=None, seed=0)``. ``stat``, ``set``, ``save`` and
    ``load`` as for SimCLR. The pieces are borrowed and kept alive."""

    def __init__(self, ctx: Context, encoder: Module, head: Module, augment: Augment,
                 loss: Union[CrossEntropy, Distill], optimizer: Optimizer) -> None:
        _check_pieces(ctx, ("encoder", encoder, Module), ("head", head, Module),
                           ("augment", augment, Augment), ("loss", loss, (CrossEntropy, Distill)),
                           ("optimizer", optimizer, Optimizer))
        out = ctypes.c_void_p()
        fn.finetune_trainer_create(ctx._ptr, encoder._ptr, head._ptr, augment._ptr, loss._ptr, optimizer._ptr,
                                   ctypes.byref(out))
        self._init_native(out.value, _lib.cdll.simclr_trainer_destroy,
                          [ctx, encoder, head, augment, loss, optimizer])
        self.context, self.encoder, self.head = ctx, encoder, head
        self.augment, self.loss, self.optimizer = augment, loss, optimizer

    def step(self, images: Any, labels: Any, seed: int) -> float:  # type: ignore[override]
        """One fine-tuning step on uint8 images [N, H, W, C] with N integer
        labels; returns the loss. A failed step leaves everything as before."""
        p = self._ptr
        x = as_input(self.context, images, DType.U8, "images")
        lab = labels_array(labels, x.shape[0] if x.ndim else 0, "labels")
        value = ctypes.c_float()
        fn.trainer_step_labels(p, x._ptr, ctypes.c_void_p(lab.ctypes.data), lab.shape[0], check_seed(seed),
                               ctypes.byref(value))
        return float(value.value)

    def step_distill(self, images: Any, teacher_encoder: Module, teacher_head: Module, labels: Any = None,
                     seed: int = 0) -> float:
        """One distillation step (the trainer's loss is a Distill): the teacher
        runs in EVAL mode without gradient over the same views; labels None
        (no row labelled) or N integers, -1 for an unlabelled image."""
        for name, obj in (("teacher_encoder", teacher_encoder), ("teacher_head", teacher_head)):
            if not isinstance(obj, Module):
                raise TypeError("%s must be a simclr.Module, not %s" % (name, type(obj).__name__))
        p = self._ptr
        x = as_input(self.context, images, DType.U8, "images")
        value = ctypes.c_float()
        if labels is None:
            lab_ptr, n = ctypes.c_void_p(None), 0
        else:
            lab = labels_array(labels, x.shape[0] if x.ndim else 0, "labels")
            lab_ptr, n = ctypes.c_void_p(lab.ctypes.data), lab.shape[0]
        fn.trainer_step_distill(p, x._ptr, teacher_encoder._ptr, teacher_head._ptr, lab_ptr, n, check_seed(seed),
                                ctypes.byref(value))
        return float(value.value)
