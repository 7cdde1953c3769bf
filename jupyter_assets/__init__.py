"""jupyter-assets: an image asset library for Jupyter (server extension, standalone API, notebook widgets)."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .app import AssetsApp

    return [{"module": "jupyter_assets", "app": AssetsApp}]
