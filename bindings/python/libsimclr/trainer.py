"""The SimCLR trainer: augment -> encoder -> head -> NT-Xent -> backward -> optimizer."""
from __future__ import annotations

import ctypes
from typing import Any, Dict, Union

from . import _lib
from ._handle import Handle
from .augment import Augment
from .core import Context, as_input, check_context, check_enum, check_path, check_seed
from .enums import DType, Stat
from .loss import NTXent
from .modules import Module
from .optim import Optimizer

fn = _lib.fn


class Trainer(Handle):
    """One SimCLR step per call on a batch of uint8 images [N, H, W, C].

    The pieces are borrowed and kept alive by the trainer."""

    _what = "trainer"

    def __init__(self, ctx: Context, encoder: Module, head: Module, augment: Augment, loss: NTXent,
                 optimizer: Optimizer) -> None:
        check_context(ctx)
        for name, obj, cls in (("encoder", encoder, Module), ("head", head, Module),
                               ("augment", augment, Augment), ("loss", loss, NTXent),
                               ("optimizer", optimizer, Optimizer)):
            if not isinstance(obj, cls):
                raise TypeError("%s must be a simclr.%s, not %s" % (name, cls.__name__, type(obj).__name__))
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

    def save(self, path: Any) -> None:
        """Checkpoint of encoder, head, optimizer state and counters (resumes bit-identically)."""
        fn.trainer_save(self._ptr, check_path(path))

    def load(self, path: Any) -> None:
        fn.trainer_load(self._ptr, check_path(path))
