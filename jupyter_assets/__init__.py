"""jupyter-assets: an image asset library for Jupyter (server extension, standalone API, notebook widgets)."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["AssetsApiError", "AssetsClient", "__version__"]

_LAZY = {"AssetsClient", "AssetsApiError"}


def __getattr__(name: str) -> Any:
    # The client imports requests; the server extension does not need it, so it loads on first use only.
    if name in _LAZY:
        from . import client

        return getattr(client, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .app import AssetsApp

    return [{"module": "jupyter_assets", "app": AssetsApp}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    # The prebuilt JupyterLab panel (built from labextension/ by `make`, shipped in the wheel).
    return [{"src": "labextension", "dest": "jupyter-assets"}]
