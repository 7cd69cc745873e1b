"""Losses: NT-Xent (SimCLR's contrastive loss), and the supervised losses of
fine-tuning and distillation (cross-entropy, SimCLR v2's distillation)."""
from __future__ import annotations

import ctypes
from typing import Any, Optional, Tuple

from . import _lib
from ._handle import Handle
from .core import Context, as_input, as_output, check_context, check_float, check_int, labels_array
from .enums import DType, LossParam
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


class _LossSettings(Handle):
    """simclr_loss_set / simclr_loss_get by key, shared by every loss kind."""

    _what = "loss"

    def set(self, key: LossParam, value: float) -> None:
        fn.loss_set(self._ptr, int(LossParam(key)), float(value))

    def get(self, key: LossParam) -> float:
        v = ctypes.c_double()
        fn.loss_get(self._ptr, int(LossParam(key)), ctypes.byref(v))
        return v.value

    def backward(self, out: Any = None) -> Any:
        """d(loss)/d(logits) (the student's for distillation) of the last forward,
        float32 [N, classes], as a new array (or into out)."""
        p = self._ptr
        shape = getattr(self, "_shape", None)
        if shape is None:
            raise StateError("%s.backward: no forward yet" % type(self).__name__, 8, "backward")
        gt, res = as_output(self.context, out, shape, DType.F32, "out")
        fn.loss_backward(p, gt._ptr)
        return res


class CrossEntropy(_LossSettings):
    """Softmax cross-entropy over class logits [N, classes] with integer labels:
    F.cross_entropy(logits, labels, label_smoothing=eps), mean over rows.

    ``loss, top1 = ce(logits, labels)``; ``ce.backward()`` -> d(loss)/d(logits)."""

    def __init__(self, ctx: Context, n_classes: int, label_smoothing: float = 0.0) -> None:
        check_context(ctx)
        out = ctypes.c_void_p()
        fn.cross_entropy_create(ctx._ptr, check_int(n_classes, "n_classes"), ctypes.byref(out))
        self._init_native(out.value, _lib.cdll.simclr_loss_destroy, [ctx])
        self.context = ctx
        self.n_classes = int(n_classes)
        self._shape: Optional[Tuple[int, ...]] = None
        if label_smoothing:
            self.set(LossParam.LABEL_SMOOTHING, check_float(label_smoothing, "label_smoothing"))

    def forward(self, logits: Any, labels: Any) -> Tuple[float, float]:
        """(loss, top-1 accuracy of the batch); keeps the gradient for backward."""
        p = self._ptr
        zt = as_input(self.context, logits, DType.F32, "logits")
        lab = labels_array(labels, zt.shape[0] if zt.ndim else 0, "labels")
        value, acc = ctypes.c_float(), ctypes.c_float()
        fn.loss_forward_labels(p, zt._ptr, ctypes.c_void_p(lab.ctypes.data), lab.shape[0], ctypes.byref(value),
                               ctypes.byref(acc))
        self._shape = zt.shape
        return float(value.value), float(acc.value)

    __call__ = forward

    def __repr__(self) -> str:
        return "<simclr.CrossEntropy classes=%d>" % self.n_classes


class Distill(_LossSettings):
    """SimCLR v2's distillation loss: the teacher's softmax(t / tau) as targets of
    the student's log_softmax(s / tau), mean over rows, times tau^2 unless
    ``scale_t2=False`` (the official code multiplies; the paper's equation
    does not); optionally mixed with the cross-entropy on labelled rows
    (``label_weight`` w: (1 - w) distillation + w cross-entropy; labels -1 =
    unlabelled)."""

    def __init__(self, ctx: Context, n_classes: int, temperature: float = 1.0, label_weight: float = 0.0,
                 scale_t2: bool = True, label_smoothing: float = 0.0) -> None:
        check_context(ctx)
        out = ctypes.c_void_p()
        fn.distill_create(ctx._ptr, check_int(n_classes, "n_classes"), check_float(temperature, "temperature"),
                          ctypes.byref(out))
        self._init_native(out.value, _lib.cdll.simclr_loss_destroy, [ctx])
        self.context = ctx
        self.n_classes = int(n_classes)
        self.temperature = float(temperature)
        self._shape: Optional[Tuple[int, ...]] = None
        self.set(LossParam.LABEL_WEIGHT, check_float(label_weight, "label_weight"))
        self.set(LossParam.TEMPERATURE_SCALE, 1 if scale_t2 else 0)
        self.set(LossParam.LABEL_SMOOTHING, check_float(label_smoothing, "label_smoothing"))

    def forward(self, student: Any, teacher: Any, labels: Any = None) -> Tuple[float, float]:
        """(loss, fraction of rows whose top-1 class is the teacher's); keeps the
        gradient at the student's logits for backward."""
        p = self._ptr
        st = as_input(self.context, student, DType.F32, "student")
        tt = as_input(self.context, teacher, DType.F32, "teacher")
        value, acc = ctypes.c_float(), ctypes.c_float()
        if labels is None:
            fn.loss_forward_distill(p, st._ptr, tt._ptr, None, 0, ctypes.byref(value), ctypes.byref(acc))
        else:
            lab = labels_array(labels, st.shape[0] if st.ndim else 0, "labels")
            fn.loss_forward_distill(p, st._ptr, tt._ptr, ctypes.c_void_p(lab.ctypes.data), lab.shape[0],
                                    ctypes.byref(value), ctypes.byref(acc))
        self._shape = st.shape
        return float(value.value), float(acc.value)

    __call__ = forward

    def __repr__(self) -> str:
        return "<simclr.Distill classes=%d temperature=%g>" % (self.n_classes, self.temperature)
