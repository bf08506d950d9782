"""Talking to one gateway replica: read the version it holds, push a newer mapping."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import httpx

from .model import DesiredMapping, Endpoint

MAPPING_PATH = "/gateway/bucket-mapping"


@dataclass(frozen=True)
class Held:
    """What a replica reports holding: its version (None: never pushed) and content hash."""

    version: dict[str, Any] | None
    hash: str

    def generation_of(self, desired: DesiredMapping) -> int:
        """The generation of ``desired``'s object that the replica holds; 0 for none."""
        if not self.version or self.version.get("uid") != desired.uid:
            return 0
        return int(self.version.get("generation", 0))

    def satisfies(self, desired: DesiredMapping) -> bool:
        """True when the replica holds ``desired`` or something newer (as gateways order it)."""
        if not self.version:
            return False
        key = (str(self.version.get("created", "")), int(self.version.get("generation", 0)))
        if key == desired.sort_key:
            return self.hash == desired.hash
        return key > desired.sort_key


class PushError(Exception):
    """A replica could not be read or updated; the message says why, briefly."""


class GatewayPusher:
    """Reads and pushes bucket mappings over one shared HTTP client.

    Args:
        token: The gateway's bucket-mapping (or admin) token.
        timeout: Seconds for each request; a replica that does not answer in time is failing.
    """

    def __init__(self, token: str | None, timeout: float = 2.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.AsyncClient(
            headers=headers,
            timeout=timeout,
            trust_env=False,
            limits=httpx.Limits(max_keepalive_connections=64, keepalive_expiry=30),
        )

    async def held(self, endpoint: Endpoint) -> Held:
        """Raises: PushError."""
        response = await self._request("GET", endpoint, None)
        return _held(self._json(response, endpoint))

    async def push(self, endpoint: Endpoint, desired: DesiredMapping) -> Held:
        """Push ``desired``; a 409 means the replica already holds something newer.

        Returns:
            What the replica holds afterwards.

        Raises:
            PushError.
        """
        response = await self._request("PUT", endpoint, desired.request_body())
        if response.status_code == 409:
            # {"detail": {"message": ..., "current": <the mapping it holds>}, "code": "conflict"}
            detail = self._json(response, endpoint).get("detail")
            current = detail.get("current") if isinstance(detail, dict) else None
            if isinstance(current, dict):
                return _held(current)
            return await self.held(endpoint)
        return _held(self._json(response, endpoint))

    async def _request(
        self, method: str, endpoint: Endpoint, body: dict[str, Any] | None
    ) -> httpx.Response:
        try:
            return await self._client.request(method, endpoint.url + MAPPING_PATH, json=body)
        except httpx.TimeoutException as exc:
            raise PushError(f"no answer within {self._client.timeout.read}s") from exc
        except httpx.HTTPError as exc:
            raise PushError(_brief(exc)) from exc

    @staticmethod
    def _json(response: httpx.Response, endpoint: Endpoint) -> dict[str, Any]:
        if response.status_code not in (200, 409):
            detail = response.text[:200]
            with contextlib.suppress(ValueError):
                detail = str(response.json().get("detail", detail))
            raise PushError(f"HTTP {response.status_code}: {detail}")
        try:
            data: dict[str, Any] = response.json()
        except ValueError as exc:
            raise PushError(f"{endpoint.url} answered something that is not JSON") from exc
        return data

    async def aclose(self) -> None:
        await self._client.aclose()


def _held(data: dict[str, Any]) -> Held:
    version = data.get("version")
    return Held(version if isinstance(version, dict) else None, str(data.get("hash", "")))


def _brief(exc: Exception) -> str:
    """The root cause in a few words: "connection refused" rather than anyio's "All
    connection attempts failed"."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, OSError) and cause.errno is not None:
            return cause.strerror or str(cause)
        cause = cause.__cause__ or cause.__context__
    return (str(exc) or type(exc).__name__)[:200]
