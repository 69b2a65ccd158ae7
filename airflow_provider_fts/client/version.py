"""The provider's version, kept in ``client/`` so the framework-free client can name itself
(its User-Agent) without importing the package root, which re-exports it."""

from __future__ import annotations

__version__ = "0.1.0"
