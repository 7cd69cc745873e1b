"""Modules: ResNet encoders and MLP projection heads, with dict-like parameters."""
from __future__ import annotations

import ctypes
from typing import Any, Dict, Iterator, Mapping, Optional, Tuple, Union

import numpy as np

from . import _lib
from ._handle import Handle
from .core import (Context, Tensor, as_input, as_output, check_context, check_enum, check_float, check_int,
                   check_int64, check_path, check_seed)
from .enums import DType, Mode, Stem, VitPool, VitPreset, PARAM_BUFFER, PARAM_NO_DECAY
from .errors import InvalidArgument, ShapeError, StateError

fn = _lib.fn


class Parameter:
    """One named tensor of a module: a parameter (with its gradient) or a buffer.

    value and grad are Tensors owned by the module: ``p.value.numpy(copy=False)``
    is a writable view into the model itself."""

    __slots__ = ("name", "value", "grad", "flags")

    def __init__(self, name: str, value: Tensor, grad: Optional[Tensor], flags: int) -> None:
        self.name = name
        self.value = value
        self.grad = grad
        self.flags = flags

    @property
    def no_decay(self) -> bool:
        """BN weight/bias or a bias: excluded from weight decay and LARS adaptation."""
        return bool(self.flags & PARAM_NO_DECAY)

    @property
    def is_buffer(self) -> bool:
        """Not trained (BN running statistics)."""
        return bool(self.flags & PARAM_BUFFER)

    @property
    def shape(self) -> Tuple[int, ...]:
        return self.value.shape

    def __repr__(self) -> str:
        kind = "buffer" if self.is_buffer else "param"
        return "<simclr.Parameter %s %s %s%s>" % (self.name, kind, list(self.shape),
                                                   " no_decay" if self.no_decay else "")


class ParamDict(Mapping[str, Parameter]):
    """Read-only mapping name -> Parameter in the module's order (parameters, then buffers)."""

    def __init__(self, module: "Module") -> None:
        self._items: Dict[str, Parameter] = {}
        ptr = module._ptr
        for i in range(fn.module_param_count(ptr)):
            name = ctypes.c_char_p()
            value = ctypes.c_void_p()
            grad = ctypes.c_void_p()
            flags = ctypes.c_int()
            fn.module_param(ptr, i, ctypes.byref(name), ctypes.byref(value), ctypes.byref(grad),
                            ctypes.byref(flags))
            n = (name.value or b"").decode()
            v = Tensor._borrowed(value.value, module, module.context)
            g = Tensor._borrowed(grad.value, module, module.context) if grad.value else None
            self._items[n] = Parameter(n, v, g, int(flags.value))

    def __getitem__(self, key: str) -> Parameter:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


def _mode(mode: Union[str, bool, int, Mode]) -> int:
    if isinstance(mode, bool):
        return int(Mode.TRAIN if mode else Mode.EVAL)
    return check_enum(mode, Mode, "mode")


class Module(Handle):
    """A network piece with parameters and an explicit forward/backward."""

    _what = "module"
    context: Context

    def _adopt(self, ctx: Context, ptr: Optional[int]) -> None:
        self._init_native(ptr, _lib.cdll.simclr_module_destroy, [ctx])
        self.context = ctx
        self._last_train_x: Optional[Tuple[int, ...]] = None
        self._params: Optional[ParamDict] = None

    @property
    def output_dim(self) -> int:
        """Feature size D of the output [N, D]."""
        return int(fn.module_output_dim(self._ptr))

    @property
    def arch(self) -> str:
        """Architecture string, e.g. "resnet18 width=16 in=1 stem=cifar"."""
        s = fn.module_arch(self._ptr)
        return s.decode() if s else ""

    @property
    def param_scalars(self) -> int:
        """Number of trainable scalars (buffers excluded)."""
        return int(fn.module_param_scalars(self._ptr))

    @property
    def params(self) -> ParamDict:
        """Parameters and buffers by torchvision name (dict-like, read-only)."""
        self._ptr
        if self._params is None:
            self._params = ParamDict(self)
        return self._params

    def forward(self, x: Any, mode: Union[str, bool, int, Mode] = "eval", out: Any = None) -> Any:
        """Runs the module on x (F32 [N, ...]): returns [N, output_dim].

        x: a simclr.Tensor or any real array (converted to float32). mode:
        "eval" (running BN statistics) or "train" (batch statistics, keeps
        activations for backward). out: None (a new ndarray), or a float32
        ndarray / Tensor of shape [N, D] to write into (returned)."""
        p = self._ptr
        m = _mode(mode)
        xt = as_input(self.context, x, DType.F32, "x")
        n = xt.shape[0]
        yt, result = as_output(self.context, out, (n, self.output_dim), DType.F32, "out")
        fn.module_forward(p, xt._ptr, m, yt._ptr)
        self._last_train_x = xt.shape if m == Mode.TRAIN else None
        return result

    __call__ = forward

    def backward(self, dy: Any, want_dx: bool = False, dx: Any = None) -> Any:
        """Back-propagates dy (the shape of the last TRAIN forward's output).

        Adds into the gradients; returns the input gradient when want_dx is
        true or dx (an output array/Tensor) is given, else None. StateError
        without a preceding TRAIN forward."""
        p = self._ptr
        dyt = as_input(self.context, dy, DType.F32, "dy")
        if not (want_dx or dx is not None):
            fn.module_backward(p, dyt._ptr, None)
            return None
        if dx is None and self._last_train_x is None:
            raise StateError("backward: no TRAIN forward from Python to take dx's shape from "
                             "(pass dx explicitly)", 8, "backward")
        if dx is None:
            dxt, result = as_output(self.context, None, self._last_train_x, DType.F32, "dx")
        elif isinstance(dx, Tensor):
            if dx.readonly or dx.dtype != np.float32:
                raise TypeError("dx must be a writable float32 tensor")
            dxt, result = dx, dx  # the library checks its shape against the last forward
        else:
            dxt, result = as_output(self.context, dx, tuple(np.shape(dx)), DType.F32, "dx")
        fn.module_backward(p, dyt._ptr, dxt._ptr)
        return result

    def zero_grad(self) -> None:
        fn.module_zero_grad(self._ptr)

    def state_dict(self) -> Dict[str, np.ndarray]:
        """Copies of every parameter and buffer, by name (like torch's state_dict)."""
        return {k: p.value.numpy(copy=True) for k, p in self.params.items()}

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> None:
        """Copies arrays into parameters/buffers of the same names and shapes.

        strict: every module tensor must be present and no unknown name given.
        Everything is checked before anything is written."""
        if not isinstance(state, Mapping):
            raise TypeError("state must be a mapping name -> array")
        params = self.params
        unknown = [k for k in state if k not in params]
        missing = [k for k in params if k not in state]
        if strict and (unknown or missing):
            raise InvalidArgument("load_state_dict: unknown %s, missing %s" % (unknown, missing),
                                  1, "load_state_dict")
        arrays = {}
        for k, v in state.items():
            if k not in params:
                continue
            a = np.asarray(v)
            if a.dtype.kind not in "fiub":
                raise TypeError("%s must hold real numbers, not %s" % (k, a.dtype))
            if tuple(a.shape) != params[k].shape:
                raise ShapeError("%s: array shape %s, module expects %s" % (k, list(a.shape),
                                 list(params[k].shape)), 2, "load_state_dict")
            arrays[k] = a
        for k, a in arrays.items():
            params[k].value.copy_from(a)

    def momentum_update(self, source: "Module", momentum: float) -> None:
        """self = momentum * self + (1 - momentum) * source, parameters and BN running
        statistics (a module of the same architecture; MoCo's key encoder update)."""
        if not isinstance(source, Module):
            raise TypeError("source must be a simclr module, not %s" % type(source).__name__)
        fn.module_momentum_update(self._ptr, source._ptr, check_float(momentum, "momentum"))

    def save(self, path: Any) -> None:
        """Checkpoint of parameters and buffers (atomic write)."""
        fn.module_save(self._ptr, check_path(path))

    def load(self, path: Any) -> None:
        """Loads a checkpoint of the same architecture; the module is unchanged on error."""
        fn.module_load(self._ptr, check_path(path))

    def export_safetensors(self, path: Any) -> None:
        """Writes safetensors under torchvision names (loadable by torchvision.models.resnet*)."""
        fn.module_export_safetensors(self._ptr, check_path(path))

    def import_safetensors(self, path: Any) -> None:
        fn.module_import_safetensors(self._ptr, check_path(path))

    def __repr__(self) -> str:
        if self.closed:
            return "<simclr.%s closed>" % type(self).__name__
        return "<simclr.%s %s D=%d>" % (type(self).__name__, self.arch, self.output_dim)


class ResNet(Module):
    """A ResNet encoder (torchvision layout, no fc): output [N, D] after global pooling.

    depth 18/34/50/101/152; width = stem width (64 in torchvision);
    stem "cifar" (3x3, no max pool) or "imagenet" (7x7 stride 2 + max pool)."""

    def __init__(self, ctx: Context, depth: int = 18, width: int = 64, in_channels: int = 3,
                 stem: Union[str, int, Stem] = "cifar", seed: int = 0) -> None:
        check_context(ctx)
        out = ctypes.c_void_p()
        fn.resnet_create_v2(ctx._ptr, check_int(depth, "depth"), check_int64(width, "width"),
                            check_int64(in_channels, "in_channels"), check_enum(stem, Stem, "stem"),
                            check_seed(seed), ctypes.byref(out))
        self._adopt(ctx, out.value)


class MLPHead(Module):
    """Projection head in_dim -> hidden_dim -> ... -> out_dim with n_layers linear layers.

    batch_norm=False: SimCLR v1 (biases, no BN); True: SimCLR v2 (BN after each layer)."""

    def __init__(self, ctx: Context, in_dim: int, hidden_dim: int = 2048, out_dim: int = 128,
                 n_layers: int = 2, batch_norm: bool = False, seed: int = 0) -> None:
        check_context(ctx)
        if not isinstance(batch_norm, (bool, int)) or isinstance(batch_norm, float):
            raise TypeError("batch_norm must be a bool")
        out = ctypes.c_void_p()
        fn.mlp_head_create_v2(ctx._ptr, check_int64(in_dim, "in_dim"), check_int64(hidden_dim, "hidden_dim"),
                              check_int64(out_dim, "out_dim"), check_int(n_layers, "n_layers"),
                              1 if batch_norm else 0, check_seed(seed), ctypes.byref(out))
        self._adopt(ctx, out.value)


class SwavPrototypes(Module):
    """SwAV's K prototypes of dimension dim (the head's output size): one
    parameter "weight" [k, dim] with unit rows; as a module y = x weight^T.
    Pass it to the Optimizer with encoder and head, then to SwavTrainer."""

    def __init__(self, ctx: Context, dim: int, k: int = 3000, seed: int = 0) -> None:
        check_context(ctx)
        out = ctypes.c_void_p()
        fn.swav_prototypes_create(ctx._ptr, check_int64(dim, "dim"), check_int64(k, "k"), check_seed(seed),
                                  ctypes.byref(out))
        self._adopt(ctx, out.value)


class ViT(Module):
    """A Vision Transformer encoder (torchvision's VisionTransformer without heads):
    output [N, hidden_dim], the class token's final state (pool="cls") or the
    mean of the patch tokens (pool="mean").

    Either a preset ("tiny_16", "small_16", "tiny_cifar", "small_cifar"; class
    token) or every size given: image_size (a multiple of patch_size),
    hidden_dim (a multiple of heads), depth, heads, mlp_dim."""

    def __init__(self, ctx: Context, image_size: int = 32, patch_size: int = 4, in_channels: int = 3,
                 hidden_dim: int = 192, depth: int = 12, heads: int = 3, mlp_dim: int = 768,
                 pool: Union[str, int, VitPool] = "cls", seed: int = 0,
                 preset: Union[None, str, int, VitPreset] = None) -> None:
        check_context(ctx)
        out = ctypes.c_void_p()
        if preset is not None:
            fn.vit_create_preset(ctx._ptr, check_enum(preset, VitPreset, "preset"),
                                 check_int64(in_channels, "in_channels"), check_seed(seed), ctypes.byref(out))
        else:
            fn.vit_create(ctx._ptr, check_int64(image_size, "image_size"), check_int64(patch_size, "patch_size"),
                          check_int64(in_channels, "in_channels"), check_int64(hidden_dim, "hidden_dim"),
                          check_int(depth, "depth"), check_int(heads, "heads"), check_int64(mlp_dim, "mlp_dim"),
                          check_enum(pool, VitPool, "pool"), check_seed(seed), ctypes.byref(out))
        self._adopt(ctx, out.value)


class LinearHead(Module):
    """A linear classification head Linear(in_dim, n_classes) with a bias, named as
    torchvision's classifier (fc.weight [n_classes, in_dim], fc.bias): output
    the logits [N, n_classes]. Initialized as torch.nn.Linear."""

    def __init__(self, ctx: Context, in_dim: int, n_classes: int, seed: int = 0) -> None:
        check_context(ctx)
        out = ctypes.c_void_p()
        fn.linear_head_create(ctx._ptr, check_int64(in_dim, "in_dim"), check_int(n_classes, "n_classes"),
                              check_seed(seed), ctypes.byref(out))
        self._adopt(ctx, out.value)


def export_classifier_safetensors(encoder: Module, head: Module, path: Any) -> None:
    """Writes encoder + head as one safetensors file with torchvision's names (fc.*
    after a ResNet, heads.head.* after a ViT) and "simclr.classes" in the
    metadata: it loads into torchvision's model with its classifier."""
    if not isinstance(encoder, Module) or not isinstance(head, Module):
        raise TypeError("encoder and head must be simclr modules")
    fn.export_classifier_safetensors(encoder._ptr, head._ptr, check_path(path))
