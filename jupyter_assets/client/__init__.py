"""A Python client for the `/api/v1/assets` API, for notebooks and scripts.

Inside a notebook ``AssetsClient()`` finds the Jupyter server that runs the kernel; elsewhere pass the URL and a
token (an API key or a JWT). Imports of pyarrow, pandas, tqdm and jupyter_server happen where they are needed, so
importing this package stays cheap.

One module a job: ``assets_client`` (the API's operations), ``transport`` (sessions, the envelope, API errors),
``results`` (what the calls return, and its HTML in a notebook), ``multipart`` (the body of an upload),
``batch_upload`` (upload_many), ``discovery`` (which Jupyter server runs this kernel).
"""

from .assets_client import AssetsClient
from .batch_upload import IMAGE_EXTENSIONS, collect_paths
from .discovery import discover_server
from .multipart import sniff_content_type
from .results import Asset, AssetList, Page, UploadReport
from .transport import API_PATH, CHUNK, AssetsApiError

__all__ = [
    "API_PATH",
    "CHUNK",
    "IMAGE_EXTENSIONS",
    "Asset",
    "AssetList",
    "AssetsApiError",
    "AssetsClient",
    "Page",
    "UploadReport",
    "collect_paths",
    "discover_server",
    "sniff_content_type",
]
