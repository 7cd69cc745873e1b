"""Shared fixtures for the Python-side tests (PyTorch cross-checks and bindings).

The library under test is found through SIMCLR_LIBRARY (set by `make test-python`);
SIMCLR_BUILD points at the build directory holding test helper programs."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
