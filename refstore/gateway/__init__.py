"""The RefStore gateway SDK: ``GatewayClient`` and ``AsyncGatewayClient`` on httpx.

Projects reach a shared gateway with only its URL and a key::

    from refstore.gateway import GatewayClient

    with GatewayClient("http://127.0.0.1:8000", api_key="...") as client:
        result = client.upload_from_local("report.pdf", "default", "docs")
        data = client.download_file(result["uri"])

Both clients have the same methods (``async`` on ``AsyncGatewayClient``); errors
are the classes of :mod:`refstore.errors`, as with the library. Needs
``pip install "refstore[gateway]"``.
"""

from ._async_client import AsyncDownloadStream, AsyncGatewayClient
from ._core import RetryPolicy
from ._sync_client import DownloadStream, GatewayClient
from ._types import (
    DeleteResult,
    FileInfoResult,
    ListResult,
    PresignedURL,
    ProgressCallback,
    ResumeCallback,
    UploadData,
    UploadResult,
)

__all__ = [
    "AsyncDownloadStream",
    "AsyncGatewayClient",
    "DeleteResult",
    "DownloadStream",
    "FileInfoResult",
    "GatewayClient",
    "ListResult",
    "PresignedURL",
    "ProgressCallback",
    "ResumeCallback",
    "RetryPolicy",
    "UploadData",
    "UploadResult",
]
