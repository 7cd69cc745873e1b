"""Optimizers (SGD, AdamW, LARS) with linear warmup and cosine decay."""
from __future__ import annotations

import ctypes
from typing import Any, Dict, Sequence, Union

from . import _lib
from ._handle import Handle
from .core import Context, Tensor, check_context, check_enum, check_float, check_int64
from .enums import OptKind, OptParam
from .modules import Module

fn = _lib.fn

KeyLike = Union[str, int, OptParam]


def lr_linear_scaling(base: float, batch: int) -> float:
    """base * batch / 256 (SimCLR: base 0.3)."""
    return float(fn.lr_linear_scaling(check_float(base, "base"), check_int64(batch, "batch")))


def lr_sqrt_scaling(base: float, batch: int) -> float:
    """base * sqrt(batch) (SimCLR: base 0.075, better for small batches)."""
    return float(fn.lr_sqrt_scaling(check_float(base, "base"), check_int64(batch, "batch")))


class Optimizer(Handle):
    """An optimizer over the parameters of one or more modules (borrowed, kept alive).

    ``Optimizer(ctx, "lars", [encoder, head], lr=1.2, weight_decay=1e-6,
    warmup_steps=100, total_steps=1000)``: keyword arguments are OptParam
    names in lower case; ``opt["momentum"]`` reads and writes them too."""

    _what = "optimizer"

    def __init__(self, ctx: Context, kind: Union[str, int, OptKind], modules: Sequence[Module],
                 **params: float) -> None:
        check_context(ctx)
        if isinstance(modules, Module):
            modules = [modules]
        if not isinstance(modules, (list, tuple)) or not all(isinstance(m, Module) for m in modules):
            raise TypeError("modules must be a list of simclr modules")
        arr = (ctypes.c_void_p * max(1, len(modules)))(*[m._ptr for m in modules])
        out = ctypes.c_void_p()
        fn.optimizer_create(ctx._ptr, check_enum(kind, OptKind, "kind"), arr, len(modules),
                            ctypes.byref(out))
        self._init_native(out.value, _lib.cdll.simclr_optimizer_destroy, [ctx, *modules])
        self.context = ctx
        self.modules = tuple(modules)
        try:
            for k, v in params.items():
                self.set(k, v)
        except BaseException:
            self.close()
            raise

    def set(self, key: KeyLike, value: float) -> None:
        fn.optimizer_set(self._ptr, check_enum(key, OptParam, "key"), check_float(value, "value"))

    def get(self, key: KeyLike) -> float:
        v = ctypes.c_double()
        fn.optimizer_get(self._ptr, check_enum(key, OptParam, "key"), ctypes.byref(v))
        return v.value

    __getitem__ = get
    __setitem__ = set

    @property
    def lr(self) -> float:
        """The learning rate the next step will use (warmup and cosine applied)."""
        v = ctypes.c_double()
        fn.optimizer_lr(self._ptr, ctypes.byref(v))
        return v.value

    def step(self) -> None:
        """Updates every parameter from its gradient; NumericError (nothing changed) on NaN/inf."""
        fn.optimizer_step(self._ptr)

    def zero_grad(self) -> None:
        """Zeroes the gradients of every module this optimizer covers."""
        for m in self.modules:
            m.zero_grad()

    def state(self) -> Dict[str, Tensor]:
        """Optimizer state tensors (momentum buffers, Adam moments) by name, owned by the optimizer."""
        p = self._ptr
        out = {}
        for i in range(fn.optimizer_state_count(p)):
            name, value = ctypes.c_char_p(), ctypes.c_void_p()
            fn.optimizer_state(p, i, ctypes.byref(name), ctypes.byref(value))
            out[(name.value or b"").decode()] = Tensor._borrowed(value.value, self, self.context)
        return out
