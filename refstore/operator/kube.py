"""Writing BucketMapping status from a daemon.

kopf applies a daemon's ``patch`` only when the daemon returns, so a daemon that runs for
the object's lifetime writes status itself, with the credentials kopf logged in with.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import ssl
import tempfile
from typing import Any

import httpx
import kopf

from .model import GROUP, PLURAL, VERSION


def _file(data: str | bytes) -> str:
    """A private temporary file holding ``data`` (httpx takes client certificates as files)."""
    handle, path = tempfile.mkstemp(prefix="refstore-operator-")
    with os.fdopen(handle, "wb") as out:
        out.write(data.encode() if isinstance(data, str) else data)
    atexit.register(_remove, path)
    return path


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _ssl_context(info: kopf.ConnectionInfo) -> ssl.SSLContext | bool:
    if info.insecure:
        return False
    context = ssl.create_default_context()
    if info.ca_path:
        context.load_verify_locations(cafile=os.fsdecode(info.ca_path))
    elif info.ca_data:
        data = info.ca_data
        context.load_verify_locations(cadata=data.decode() if isinstance(data, bytes) else data)
    cert = info.certificate_path or (info.certificate_data and _file(info.certificate_data))
    key = info.private_key_path or (info.private_key_data and _file(info.private_key_data))
    if cert:
        context.load_cert_chain(os.fsdecode(cert), os.fsdecode(key) if key else None)
    return context


class StatusWriteError(Exception):
    """The API server refused the status or did not answer; the message says which."""


class StatusWriter:
    """``PATCH .../bucketmappings/NAME/status`` (a JSON merge patch)."""

    def __init__(self, info: kopf.ConnectionInfo, timeout: float = 10.0) -> None:
        headers = {}
        if info.token:
            headers["Authorization"] = f"{info.scheme or 'Bearer'} {info.token}"
        auth = httpx.BasicAuth(info.username, info.password or "") if info.username else None
        self._client = httpx.AsyncClient(
            base_url=info.server,
            headers=headers,
            auth=auth,
            verify=_ssl_context(info),
            timeout=timeout,
            trust_env=info.trust_env,
        )

    async def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> bool:
        """Write ``status``; False when the object is gone.

        Raises:
            StatusWriteError: the API server refused or did not answer.
        """
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}/status"
        try:
            response = await self._client.patch(
                path,
                json={"status": status},
                headers={"Content-Type": "application/merge-patch+json"},
            )
        except httpx.HTTPError as exc:
            raise StatusWriteError(f"status of {namespace}/{name} not written: {exc}") from exc
        if response.status_code == 404:
            return False
        if response.status_code >= 400:
            raise StatusWriteError(
                f"status of {namespace}/{name} refused: {response.status_code} {response.text}"
            )
        return True

    async def aclose(self) -> None:
        await self._client.aclose()
