"""Lifetime of C handles seen from Python.

The C rules: an object must be destroyed before the context it came from and
before anything it borrows (a trainer before its modules); a tensor that wraps
a NumPy array needs that array alive; a NumPy view of tensor memory needs the
tensor alive. Python's garbage collector finalizes objects in cycles in no
particular order, so the order cannot rest on __del__ alone.

Each C handle therefore gets a _Native record: its pointer, its destroy
function, the records it depends on (parents) and the records depending on it
(children). A record is destroyed in C only when it was released (closed
explicitly or its Python owner was collected) AND no child is left; destroying
it then lets its parents go in turn. NumPy views are children without a C
handle ("pins"), so memory under a live view is never freed.

close() on a handle closes its whole subtree from Python's point of view
(every dependent object becomes unusable at once) and frees in C whatever no
NumPy view still pins.
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Iterable, List, Optional, Set

from .errors import StateError

_lock = threading.RLock()


class _Native:
    __slots__ = ("ptr", "destroy", "parents", "children", "released", "freed", "keep", "kind",
                 "pin")

    def __init__(self, ptr: Optional[int], destroy: Optional[Callable[[int], None]],
                 parents: Iterable["_Native"] = (), keep: Any = None, kind: str = "handle",
                 pin: bool = False) -> None:
        self.ptr = ptr
        self.destroy = destroy
        self.parents: List[_Native] = []
        self.children: Set[_Native] = set()
        self.released = False
        self.freed = False
        self.keep = keep
        self.kind = kind
        self.pin = pin
        with _lock:
            for p in parents:
                if p.released:
                    raise StateError("%s is closed" % p.kind, 8, "")
                self.parents.append(p)
                p.children.add(self)

    @property
    def closed(self) -> bool:
        return self.released

    def release(self) -> None:
        """The Python owner lets go: free now or once the last child is gone."""
        with _lock:
            if self.released:
                return
            self.released = True
            self._maybe_free()

    def _maybe_free(self) -> None:
        if not self.released or self.children or self.freed:
            return
        self.freed = True
        ptr, self.ptr = self.ptr, None
        if ptr is not None and self.destroy is not None:
            self.destroy(ptr)
        self.keep = None
        parents, self.parents = self.parents, []
        for p in parents:
            p.children.discard(self)
            p._maybe_free()

    def close_tree(self) -> None:
        """Releases this record and every dependent record except NumPy pins."""
        with _lock:
            for c in list(self.children):
                if not c.pin:
                    c.close_tree()
            self.release()


class Handle:
    """Base of every Python object that owns (or borrows) a C handle.

    Supports ``with obj: ...`` and ``obj.close()``; a closed object raises
    StateError when used. Collection by the garbage collector releases it too.
    """

    _native: _Native
    _what = "handle"

    def _init_native(self, ptr: Optional[int], destroy: Optional[Callable[[int], None]],
                     parents: Iterable["Handle"] = (), keep: Any = None) -> None:
        self._native = _Native(ptr, destroy, [p._native for p in parents], keep, self._what)

    @property
    def _ptr(self) -> int:
        n = self.__dict__.get("_native")
        if n is None or n.released or n.ptr is None:
            raise StateError("%s is closed" % self._what, 8, "")
        return n.ptr

    @property
    def closed(self) -> bool:
        """True once close() was called on this object or on something it depends on."""
        n = self.__dict__.get("_native")
        return n is None or n.released

    def close(self) -> None:
        """Frees the C object now, after closing everything that depends on it.

        Safe to call twice. Memory still viewed by a NumPy array is freed when
        the last such array is collected."""
        n = self.__dict__.get("_native")
        if n is not None:
            n.close_tree()

    def __enter__(self):  # type: ignore[no-untyped-def]
        self._ptr  # refuse to enter a closed object
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        n = self.__dict__.get("_native")
        if n is not None:
            try:
                n.release()
            except Exception:  # never raise from a finalizer
                pass


class Pin:
    """Keeps a record's memory alive while a NumPy view of it exists.

    Stored as an attribute of the ctypes buffer the view is built on; the view
    references the buffer, so the pin dies exactly when the last view does."""

    __slots__ = ("native",)

    def __init__(self, owner: _Native) -> None:
        self.native = _Native(None, None, [owner], kind="view", pin=True)

    def __del__(self) -> None:
        try:
            self.native.release()
        except Exception:
            pass
