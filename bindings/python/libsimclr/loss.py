"""NT-Xent, the SimCLR contrastive loss."""
from __future__ import annotations

import ctypes
from typing import Any, Optional, Tuple

from . import _lib
from ._handle import Handle
from .core import Context, as_input, as_output, check_context, check_float, check_int
from .enums import DType
from .errors import StateError

fn = _lib.fn


class NTXent(Handle):
    """NT-Xent over z [V*N, D] (row i + v*N is view v of sample i).

    The value is the mean over the V*N anchors (PyTorch convention; the
    official TF code reports twice this for V = 2)."""

    _what = "loss"

    def __init__(self, ctx: Context, temperature: float = 0.5, n_views: int = 2) -> None:
        check_context(ctx)
        out = ctypes.c_void_p()
        fn.ntxent_create(ctx._ptr, check_float(temperature, "temperature"),
                         check_int(n_views, "n_views"), ctypes.byref(out))
        self._init_native(out.value, _lib.cdll.simclr_loss_destroy, [ctx])
        self.context = ctx
        self.temperature = float(temperature)
        self.n_views = int(n_views)
        self._z_shape: Optional[Tuple[int, ...]] = None

    def forward(self, z: Any) -> Tuple[float, float]:
        """(loss, contrastive top-1 accuracy) of z; keeps what backward needs."""
        p = self._ptr
        zt = as_input(self.context, z, DType.F32, "z")
        value, acc = ctypes.c_float(), ctypes.c_float()
        fn.loss_forward(p, zt._ptr, ctypes.byref(value), ctypes.byref(acc))
        self._z_shape = zt.shape
        return float(value.value), float(acc.value)

    __call__ = forward

    def backward(self, out: Any = None) -> Any:
        """d(loss)/dz for the last forward, as a new array (or into out)."""
        p = self._ptr
        if self._z_shape is None and out is None:
            raise StateError("NTXent.backward: no forward yet", 8, "backward")
        shape = self._z_shape if out is None or self._z_shape is not None else tuple(getattr(out, "shape"))
        dzt, res = as_output(self.context, out, shape, DType.F32, "out")
        fn.loss_backward(p, dzt._ptr)
        return res

    def __repr__(self) -> str:
        return "<simclr.NTXent temperature=%g n_views=%d>" % (self.temperature, self.n_views)
