"""Exceptions: one class per simclr_status, all derived from SimclrError.

Each class also derives from the closest built-in exception, so code that
catches ``ValueError`` or ``OSError`` keeps working without knowing libsimclr.
"""
from __future__ import annotations

from typing import Dict, Optional, Type


class SimclrError(Exception):
    """A libsimclr call returned a status other than SIMCLR_OK.

    Attributes:
        status: the numeric simclr_status (0 never occurs here).
        message: simclr_last_error() of the failing call, or a message written
            by the bindings when they refused an argument before calling C.
        function: the C function that failed (or the Python method refusing).
    """

    status: int = -1

    def __init__(self, message: str, status: Optional[int] = None, function: str = "") -> None:
        super().__init__(message)
        if status is not None:
            self.status = status
        self.message = message
        self.function = function

    def __str__(self) -> str:
        return self.message


class InvalidArgument(SimclrError, ValueError):
    """SIMCLR_E_INVALID: a NULL handle, an out-of-range value, an unknown key."""
    status = 1


class ShapeError(SimclrError, ValueError):
    """SIMCLR_E_SHAPE: a tensor of the wrong rank, size or dtype."""
    status = 2


class OutOfMemory(SimclrError, MemoryError):
    """SIMCLR_E_NOMEM: an allocation failed."""
    status = 3


class SimclrIOError(SimclrError, OSError):
    """SIMCLR_E_IO: a file could not be opened, read, written or renamed."""
    status = 4


class FormatError(SimclrError, ValueError):
    """SIMCLR_E_FORMAT: a file is corrupt, truncated or of another kind."""
    status = 5


class NumericError(SimclrError, ArithmeticError):
    """SIMCLR_E_NUMERIC: a NaN or infinity in a loss, gradient or input."""
    status = 6


class Unsupported(SimclrError, NotImplementedError):
    """SIMCLR_E_UNSUPPORTED: valid but not implemented (or not in this build)."""
    status = 7


class StateError(SimclrError, RuntimeError):
    """SIMCLR_E_STATE: calls in the wrong order, or a closed handle used."""
    status = 8


class InternalError(SimclrError, RuntimeError):
    """SIMCLR_E_INTERNAL: a bug in the library."""
    status = 9


class Cancelled(SimclrError):
    """SIMCLR_E_CANCELLED: a stoppable progress callback asked the call to stop."""
    status = 10


class LibraryVersionError(ImportError):
    """The loaded libsimclr is older than, or incompatible with, these bindings."""


STATUS_EXCEPTIONS: Dict[int, Type[SimclrError]] = {
    cls.status: cls
    for cls in (InvalidArgument, ShapeError, OutOfMemory, SimclrIOError, FormatError,
                NumericError, Unsupported, StateError, InternalError, Cancelled)
}


def exception_for(status: int, message: str, function: str = "") -> SimclrError:
    """The exception instance for a non-OK status (SimclrError for unknown ones)."""
    cls = STATUS_EXCEPTIONS.get(status)
    if cls is None:
        return SimclrError(message, status, function)
    return cls(message, status, function)
