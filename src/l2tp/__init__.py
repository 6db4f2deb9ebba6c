"""python-l2tp: Linux L2TP control plane, kernel data-plane API and daemons."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
