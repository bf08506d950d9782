"""Streaming HTTP(S) fetcher behind ``RefStore.upload_from_url``.

:func:`open_url` performs a ``GET`` with ``urllib3`` and returns a
:class:`RemoteSource`, a file-like object that streams the body from the
network. Redirects are followed by hand so that every hop goes through the
same checks:

* only ``http`` and ``https`` URLs with a host and without userinfo;
* with ``block_private=True`` (or an ``allow_address`` policy) every address
  the host resolves to must be public (:func:`is_public_address`), otherwise
  the URL is refused before any connection is made;
* the connection goes to the checked address itself, never to a second
  resolution of the name, with the original ``Host`` header and, for
  ``https``, the original hostname for SNI and certificate verification;
* a per-operation socket ``timeout``, a total ``deadline`` (name resolution,
  every hop, headers and body) and a ``max_bytes`` cap enforced while
  streaming.

Environment proxy settings are not used.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import math
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import NoReturn, TypeAlias
from urllib.parse import quote, unquote, urljoin, urlsplit

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.exceptions import HTTPError as Urllib3HTTPError
from urllib3.response import HTTPResponse
from urllib3.util.ssl_match_hostname import CertificateError

from .errors import InvalidInputError, ObjectTooLargeError, SourceError, UnsafeURLError

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_CONTENT_TYPE",
    "DEFAULT_DEADLINE",
    "DEFAULT_FILENAME",
    "AddressPolicy",
    "IPAddress",
    "RemoteSource",
    "Resolver",
    "check_url",
    "is_public_address",
    "open_url",
]

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver: TypeAlias = Callable[[str, int], list[str]]
AddressPolicy: TypeAlias = Callable[[IPAddress], bool]

DEFAULT_DEADLINE = 3600.0
"""Total seconds allowed for one transfer when ``open_url(deadline=None)``."""

DEFAULT_CHUNK_SIZE = 1024 * 1024
DEFAULT_CONTENT_TYPE = "application/octet-stream"
DEFAULT_FILENAME = "downloaded_file"

_SCHEMES = {"http": 80, "https": 443}
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
_HOSTNAME = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?$")
_PATH_SAFE = "/%!$&'()*+,;=:@"
_QUERY_SAFE = _PATH_SAFE + "?"
_NETWORK_ERRORS = (Urllib3HTTPError, http.client.HTTPException, OSError, CertificateError)

_BLOCKED_V4 = tuple(
    ipaddress.IPv4Network(net)
    for net in (
        "0.0.0.0/8",  # "this network", unspecified
        "10.0.0.0/8",  # private
        "100.64.0.0/10",  # shared address space (CGNAT)
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local, cloud metadata
        "172.16.0.0/12",  # private
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation (TEST-NET-1)
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",  # private
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation (TEST-NET-2)
        "203.0.113.0/24",  # documentation (TEST-NET-3)
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, broadcast
    )
)
_BLOCKED_V6 = tuple(
    ipaddress.IPv6Network(net)
    for net in (
        "::/96",  # unspecified, loopback, IPv4-compatible
        "::ffff:0:0/96",  # IPv4-mapped (judged on the embedded address first)
        "::ffff:0:0:0/96",  # IPv4-translated
        "64:ff9b:1::/48",  # NAT64 local use
        "100::/64",  # discard-only
        "2001::/23",  # IETF protocol assignments, Teredo 2001::/32
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation
        "5f00::/16",  # SRv6 SIDs
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",  # multicast
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")


def _address_is_public(addr: IPAddress) -> bool:
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.scope_id:
            return False
        embedded: ipaddress.IPv4Address | None = addr.ipv4_mapped
        if embedded is None and addr in _NAT64:
            embedded = ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
        if embedded is None and addr in _SIX_TO_FOUR:
            embedded = addr.sixtofour
        if embedded is not None:
            return _address_is_public(embedded)
        if any(addr in net for net in _BLOCKED_V6) or addr.is_site_local:
            return False
    elif any(addr in net for net in _BLOCKED_V4):
        return False
    return addr.is_global and not (
        addr.is_private
        or addr.is_loopback
        or addr.is_link_local
        or addr.is_multicast
        or addr.is_reserved
        or addr.is_unspecified
    )


def is_public_address(ip: str | IPAddress) -> bool:
    """Tell whether an address may be fetched from with ``block_private=True``.

    Loopback, private, link-local, CGNAT, unspecified, multicast, reserved,
    benchmarking and documentation ranges are not public. IPv4 addresses
    embedded in IPv4-mapped, NAT64 (``64:ff9b::/96``) and 6to4 addresses are
    judged on their own; NAT64 local-use (``64:ff9b:1::/48``) and Teredo
    (``2001::/32``) are never public.

    Args:
        ip: An IPv4 or IPv6 address, as text or as an :mod:`ipaddress` object.

    Returns:
        ``True`` if the address is globally routable, ``False`` otherwise,
        including when ``ip`` is not an IP address at all.
    """
    if isinstance(ip, str):
        try:
            ip = ipaddress.ip_address(ip)
        except ValueError:
            return False
    return _address_is_public(ip)


@dataclass(frozen=True)
class _Target:
    url: str
    scheme: str
    host: str
    port: int
    literal: IPAddress | None
    request_target: str

    @property
    def host_header(self) -> str:
        if self.literal is not None and self.literal.version == 6:
            host = f"[{self.literal.compressed}]"
        elif self.literal is not None:
            host = self.literal.compressed
        else:
            host = self.host
        return host if self.port == _SCHEMES[self.scheme] else f"{host}:{self.port}"

    @property
    def tls_hostname(self) -> str:
        return self.literal.compressed if self.literal is not None else self.host.rstrip(".")

    @property
    def redacted(self) -> str:
        path = self.request_target.split("?", 1)[0]
        return f"{self.scheme}://{self.host_header}{path}"


def _numeric_host(host: str) -> IPAddress | None:
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError, ValueError):
        return None
    return ipaddress.ip_address(infos[0][4][0])


def _parse_url(url: str) -> _Target:
    if _CONTROL_CHARS.search(url):
        raise UnsafeURLError("URL contains control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeURLError(f"malformed URL: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise UnsafeURLError(
            f"only http and https URLs are allowed, not {scheme or 'a relative URL'!r}",
            scheme=scheme,
        )
    if "@" in parts.netloc:
        raise UnsafeURLError("URLs with credentials (userinfo) are not allowed")
    hostname = parts.hostname
    if not hostname:
        raise UnsafeURLError("URL has no host")
    if "%" in hostname:
        raise UnsafeURLError("URL host must not contain '%' (zone identifiers)")
    if not hostname.isascii():
        try:
            hostname = hostname.encode("idna").decode("ascii").lower()
        except UnicodeError as exc:
            raise UnsafeURLError("URL host is not a valid hostname") from exc
    literal = _numeric_host(hostname[:-1] if hostname.endswith(".") else hostname)
    if literal is None and not _HOSTNAME.match(hostname):
        raise UnsafeURLError("URL host is not a valid hostname")
    if port == 0:
        raise UnsafeURLError("URL port must not be 0")
    path = quote(parts.path or "/", safe=_PATH_SAFE)
    if not path.startswith("/"):
        path = "/" + path
    query = quote(parts.query, safe=_QUERY_SAFE)
    return _Target(
        url=url,
        scheme=scheme,
        host=hostname,
        port=port if port is not None else _SCHEMES[scheme],
        literal=literal,
        request_target=f"{path}?{query}" if query else path,
    )


def _system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _resolve(target: _Target, resolver: Resolver | None) -> list[IPAddress]:
    if target.literal is not None:
        return [target.literal]
    try:
        raw = (resolver or _system_resolver)(target.host, target.port)
    except OSError as exc:
        raise SourceError(
            f"could not resolve host {target.host!r}: {exc}", url=target.redacted
        ) from exc
    addresses: list[IPAddress] = []
    for text in raw:
        try:
            addr = ipaddress.ip_address(text)
        except ValueError as exc:
            raise SourceError(
                f"resolver returned an invalid address {text!r}", url=target.redacted
            ) from exc
        if addr not in addresses:
            addresses.append(addr)
    if not addresses:
        raise SourceError(f"host {target.host!r} has no addresses", url=target.redacted)
    return addresses


def _resolve_within(
    target: _Target, resolver: Resolver | None, deadline: _Deadline
) -> list[IPAddress]:
    """:func:`_resolve`, giving up when ``deadline`` is spent.

    A resolver cannot be interrupted (``getaddrinfo`` blocks in C), so it runs
    in a daemon thread that is left to finish on its own if the deadline
    passes first; its answer is then discarded.
    """
    if target.literal is not None or not math.isfinite(deadline.seconds):
        return _resolve(target, resolver)
    outcome: list[list[IPAddress] | BaseException] = []
    done = threading.Event()

    def run() -> None:
        try:
            outcome.append(_resolve(target, resolver))
        except BaseException as exc:  # handed to the waiting caller
            outcome.append(exc)
        finally:
            done.set()

    threading.Thread(target=run, name="refstore-urlfetch-resolve", daemon=True).start()
    if not done.wait(max(deadline.remaining(), 0.0)):
        raise deadline.error(target)
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    return result


def _checked_addresses(
    target: _Target,
    *,
    block_private: bool,
    resolver: Resolver | None,
    allow_address: AddressPolicy | None,
    deadline: _Deadline | None = None,
) -> list[IPAddress]:
    if deadline is None:
        addresses = _resolve(target, resolver)
    else:
        addresses = _resolve_within(target, resolver, deadline)
    if block_private or allow_address is not None:
        policy = allow_address or _address_is_public
        for addr in addresses:
            if not policy(addr):
                raise UnsafeURLError(
                    f"host {target.host!r} resolves to a non-public address {addr}",
                    url=target.redacted,
                    address=str(addr),
                )
    return addresses


def check_url(
    url: str,
    *,
    block_private: bool,
    resolver: Resolver | None = None,
    allow_address: AddressPolicy | None = None,
) -> list[str]:
    """Validate a URL and resolve its host, as :func:`open_url` does per hop.

    Args:
        url: The ``http`` or ``https`` URL.
        block_private: Refuse the URL if any resolved address is not public.
        resolver: ``resolver(host, port) -> [ip, ...]``; defaults to
            :func:`socket.getaddrinfo`. IP-literal hosts (including legacy
            forms such as ``2130706433`` or ``0x7f.1``) are never passed to it.
        allow_address: Policy replacing :func:`is_public_address`; giving one
            enables the check even when ``block_private`` is false.

    Returns:
        The distinct resolved addresses, in resolver order.

    Raises:
        UnsafeURLError: Bad scheme, missing host, userinfo, malformed URL, or a
            refused address.
        SourceError: The host could not be resolved.
    """
    target = _parse_url(url)
    addresses = _checked_addresses(
        target, block_private=block_private, resolver=resolver, allow_address=allow_address
    )
    return [str(addr) for addr in addresses]


def _ca_bundle() -> str | None:
    try:
        import certifi
    except ImportError:
        return None
    return str(certifi.where())


class _Deadline:
    """Total time budget of one transfer; shuts the live socket down when spent."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._expires_at = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._fired = False
        self._conn: HTTPConnection | None = None
        self._sock: socket.socket | None = None
        self._timer: threading.Timer | None = None
        if math.isfinite(seconds):
            self._timer = threading.Timer(seconds, self._fire)
            self._timer.daemon = True
            self._timer.start()

    @property
    def expired(self) -> bool:
        return self._fired or time.monotonic() >= self._expires_at

    def remaining(self) -> float:
        return self._expires_at - time.monotonic()

    def watch(self, conn: HTTPConnection) -> None:
        with self._lock:
            self._conn = conn
            self._sock = conn.sock
        if self._fired:
            self._fire()

    def unwatch(self) -> None:
        with self._lock:
            self._conn = None
            self._sock = None

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.unwatch()

    def _fire(self) -> None:
        with self._lock:
            self._fired = True
            sock = self._conn.sock if self._conn is not None else None
            sock = sock if sock is not None else self._sock
            if sock is not None:
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def error(self, target: _Target) -> SourceError:
        return SourceError(
            f"deadline of {self.seconds:g}s exceeded while fetching {target.redacted}",
            url=target.redacted,
            deadline=self.seconds,
        )


def _failure(message: str, target: _Target, deadline: _Deadline) -> SourceError:
    if deadline.expired:
        return deadline.error(target)
    return SourceError(f"{message} ({target.redacted})", url=target.redacted)


def _discard(
    deadline: _Deadline, conn: HTTPConnection, response: HTTPResponse | None = None
) -> None:
    deadline.unwatch()
    try:
        if response is not None:
            response.close()
    finally:
        conn.close()


def _new_connection(target: _Target, addr: IPAddress, timeout: float) -> HTTPConnection:
    if target.scheme == "https":
        return HTTPSConnection(
            str(addr),
            target.port,
            timeout=timeout,
            server_hostname=target.tls_hostname,
            assert_hostname=target.tls_hostname,
            cert_reqs="CERT_REQUIRED",
            ca_certs=_ca_bundle(),
        )
    return HTTPConnection(str(addr), target.port, timeout=timeout)


def _send(
    target: _Target, addresses: list[IPAddress], timeout: float, deadline: _Deadline
) -> tuple[HTTPConnection, HTTPResponse]:
    headers = {
        "Host": target.host_header,
        "User-Agent": "refstore-urlfetch",
        "Accept": "*/*",
        "Accept-Encoding": "identity",
        "Connection": "close",
    }
    last_error: Exception | None = None
    for addr in addresses:
        if deadline.expired:
            raise deadline.error(target) from last_error
        conn = _new_connection(target, addr, min(timeout, max(deadline.remaining(), 0.001)))
        deadline.watch(conn)
        try:
            try:
                conn.connect()
            except (NewConnectionError, ConnectTimeoutError) as exc:
                _discard(deadline, conn)
                last_error = exc
                continue
            conn.timeout = timeout
            deadline.watch(conn)
            conn.request(
                "GET",
                target.request_target,
                headers=headers,
                preload_content=False,
                decode_content=False,
            )
            response = conn.getresponse()
        except _NETWORK_ERRORS as exc:
            _discard(deadline, conn)
            raise _failure(f"request failed: {exc}", target, deadline) from exc
        except BaseException:
            _discard(deadline, conn)
            raise
        return conn, response
    raise _failure(
        f"could not connect to {target.host!r}: {last_error}", target, deadline
    ) from last_error


def _content_length(response: HTTPResponse, target: _Target) -> int | None:
    if "chunked" in response.headers.get("Transfer-Encoding", "").lower():
        return None
    raw = response.headers.get("Content-Length")
    if raw is None:
        return None
    values = {value.strip() for value in raw.split(",")}
    value = values.pop() if len(values) == 1 else ""
    if not (value.isascii() and value.isdigit()):
        raise SourceError(
            f"invalid Content-Length {raw!r} from {target.redacted}", url=target.redacted
        )
    return int(value)


def _filename(target: _Target) -> str:
    segment = target.request_target.split("?", 1)[0].rsplit("/", 1)[-1]
    name = unquote(segment).replace("\\", "/").rsplit("/", 1)[-1].strip()
    if name in ("", ".", "..") or _CONTROL_CHARS.search(name):
        return DEFAULT_FILENAME
    return name


def _content_type(response: HTTPResponse) -> str:
    value = response.headers.get("Content-Type", "").strip()
    if not value or _CONTROL_CHARS.search(value):
        return DEFAULT_CONTENT_TYPE
    return value


class RemoteSource:
    """The streamed body of a successful :func:`open_url` response.

    A read-only, file-like context manager. The body is pulled from the
    network as it is read; nothing is buffered beyond the current read.

    Attributes:
        content_type: The ``Content-Type`` header, or
            ``"application/octet-stream"``.
        filename: The URL-decoded last path segment of :attr:`final_url`
            (only the part after any decoded ``/`` or ``\\``), or
            ``"downloaded_file"`` when that is empty, ``.`` or ``..``.
        length: The ``Content-Length``, or ``None`` when not given.
        final_url: The URL of the response, after redirects.
        status: The HTTP status of the response.
    """

    def __init__(
        self,
        *,
        target: _Target,
        conn: HTTPConnection,
        response: HTTPResponse,
        deadline: _Deadline,
        length: int | None,
        max_bytes: int | None,
        chunk_size: int,
    ) -> None:
        self._target = target
        self._conn: HTTPConnection | None = conn
        self._response: HTTPResponse | None = response
        self._deadline = deadline
        self._max_bytes = max_bytes
        self._chunk_size = chunk_size
        self._received = 0
        self._eof = False
        self._closed = False
        self.content_type = _content_type(response)
        self.filename = _filename(target)
        self.length = length
        self.final_url = target.url
        self.status = response.status

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called or a read failed."""
        return self._closed

    @property
    def bytes_read(self) -> int:
        """Number of body bytes received so far."""
        return self._received

    def readable(self) -> bool:
        """Return ``True``: the source supports :meth:`read`."""
        return True

    def seekable(self) -> bool:
        """Return ``False``: the body is a one-way network stream."""
        return False

    def read(self, n: int = -1) -> bytes:
        """Read up to ``n`` bytes; all the remaining bytes if ``n`` is negative.

        Fewer than ``n`` bytes are returned only at the end of the body;
        ``b""`` means the body is complete.

        Raises:
            ObjectTooLargeError: The body passed ``max_bytes``.
            SourceError: Network error, truncated body, deadline exceeded, or
                the source is closed.
        """
        if self._closed:
            raise SourceError("read from a closed RemoteSource", url=self._target.redacted)
        if n == 0:
            return b""
        want = n if n > 0 else math.inf
        parts: list[bytes] = []
        got = 0
        while got < want:
            chunk = self._read_some(int(min(want - got, self._chunk_size)))
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
        return b"".join(parts)

    def iter_chunks(self) -> Iterator[bytes]:
        """Yield the remaining body in chunks of at most ``chunk_size`` bytes.

        Raises:
            ObjectTooLargeError: The body passed ``max_bytes``.
            SourceError: As for :meth:`read`.
        """
        while chunk := self.read(self._chunk_size):
            yield chunk

    def _read_some(self, amount: int) -> bytes:
        if self._eof or self._response is None:
            return b""
        if self._deadline.expired:
            self._abort(self._deadline.error(self._target), None)
        if self._max_bytes is not None:
            amount = min(amount, self._max_bytes - self._received + 1)
        try:
            data = self._response.read(amount, decode_content=False)
        except _NETWORK_ERRORS as exc:
            self._abort(
                _failure(f"reading the body failed: {exc}", self._target, self._deadline), exc
            )
        except BaseException:
            self.close()
            raise
        if self._deadline.expired:
            self._abort(self._deadline.error(self._target), None)
        self._received += len(data)
        if self._max_bytes is not None and self._received > self._max_bytes:
            self._abort(
                ObjectTooLargeError(
                    f"{self._target.redacted} is larger than the cap of {self._max_bytes} bytes",
                    url=self._target.redacted,
                    limit=self._max_bytes,
                ),
                None,
            )
        if not data:
            self._eof = True
            self._release()
        return data

    def _abort(self, error: Exception, cause: BaseException | None) -> NoReturn:
        self.close()
        raise error from cause

    def _release(self) -> None:
        self._deadline.cancel()
        conn, response = self._conn, self._response
        self._conn = self._response = None
        if conn is not None:
            _discard(self._deadline, conn, response)

    def close(self) -> None:
        """Close the connection; further reads raise :class:`SourceError`."""
        self._closed = True
        self._release()

    def __enter__(self) -> RemoteSource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<RemoteSource {self._target.redacted} {state}>"


def _validate_arguments(
    timeout: float,
    deadline: float | None,
    max_bytes: int | None,
    max_redirects: int,
    chunk_size: int,
) -> None:
    if not (math.isfinite(timeout) and timeout > 0):
        raise InvalidInputError(f"timeout must be a positive number, not {timeout!r}")
    if deadline is not None and not deadline > 0:
        raise InvalidInputError(f"deadline must be positive, not {deadline!r}")
    if max_bytes is not None and max_bytes < 0:
        raise InvalidInputError(f"max_bytes must not be negative, not {max_bytes!r}")
    if max_redirects < 0:
        raise InvalidInputError(f"max_redirects must not be negative, not {max_redirects!r}")
    if chunk_size <= 0:
        raise InvalidInputError(f"chunk_size must be positive, not {chunk_size!r}")


def open_url(
    url: str,
    *,
    timeout: float = 30.0,
    deadline: float | None = None,
    max_bytes: int | None = None,
    max_redirects: int = 5,
    block_private: bool = False,
    resolver: Resolver | None = None,
    allow_address: AddressPolicy | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> RemoteSource:
    """Start streaming ``url``; use the result as a context manager.

    Args:
        url: The ``http`` or ``https`` URL to fetch.
        timeout: Seconds allowed for the connect and for each socket read.
        deadline: Seconds allowed for the whole transfer (name resolution,
            every hop, headers and body); ``None`` means
            :data:`DEFAULT_DEADLINE` (one hour), ``math.inf`` means no total
            cap. A resolver still running at the deadline is abandoned.
        max_bytes: Largest body accepted; ``None`` for no cap.
        max_redirects: Most redirects followed (301, 302, 303, 307, 308).
        block_private: Refuse hosts resolving to any non-public address
            (:func:`is_public_address`), on the first URL and every redirect.
        resolver: ``resolver(host, port) -> [ip, ...]``; defaults to
            :func:`socket.getaddrinfo`. Not consulted for IP-literal hosts.
        allow_address: Policy replacing :func:`is_public_address`; giving one
            enables the check even when ``block_private`` is false.
        chunk_size: Largest chunk :meth:`RemoteSource.iter_chunks` yields.

    Returns:
        The open :class:`RemoteSource`, with status and headers received.

    Raises:
        UnsafeURLError: A URL (first or redirect) has a scheme other than
            http/https, no host, userinfo, or resolves to a refused address.
        ObjectTooLargeError: ``Content-Length`` is larger than ``max_bytes``.
        SourceError: Resolution or network failure, timeout, deadline, too
            many redirects, or a non-2xx final status (``context["status"]``).
        InvalidInputError: An argument is out of range.
    """
    _validate_arguments(timeout, deadline, max_bytes, max_redirects, chunk_size)
    budget = _Deadline(DEFAULT_DEADLINE if deadline is None else deadline)
    try:
        return _open(
            url,
            timeout=timeout,
            deadline=budget,
            max_bytes=max_bytes,
            max_redirects=max_redirects,
            block_private=block_private,
            resolver=resolver,
            allow_address=allow_address,
            chunk_size=chunk_size,
        )
    except BaseException:
        budget.cancel()
        raise


def _open(
    url: str,
    *,
    timeout: float,
    deadline: _Deadline,
    max_bytes: int | None,
    max_redirects: int,
    block_private: bool,
    resolver: Resolver | None,
    allow_address: AddressPolicy | None,
    chunk_size: int,
) -> RemoteSource:
    redirects = 0
    while True:
        target = _parse_url(url)
        addresses = _checked_addresses(
            target,
            block_private=block_private,
            resolver=resolver,
            allow_address=allow_address,
            deadline=deadline,
        )
        conn, response = _send(target, addresses, timeout, deadline)
        try:
            status = response.status
            location = response.headers.get("Location")
            if status in _REDIRECT_STATUSES and location:
                redirects += 1
                if redirects > max_redirects:
                    raise SourceError(
                        f"more than {max_redirects} redirects, last from {target.redacted}",
                        url=target.redacted,
                        status=status,
                        max_redirects=max_redirects,
                    )
                _discard(deadline, conn, response)
                url = urljoin(target.url, location.strip())
                continue
            if not 200 <= status < 300:
                raise SourceError(
                    f"HTTP {status} from {target.redacted}", url=target.redacted, status=status
                )
            length = _content_length(response, target)
            if max_bytes is not None and length is not None and length > max_bytes:
                raise ObjectTooLargeError(
                    f"{target.redacted} is {length} bytes, larger than the cap of"
                    f" {max_bytes} bytes",
                    url=target.redacted,
                    length=length,
                    limit=max_bytes,
                )
        except BaseException:
            _discard(deadline, conn, response)
            raise
        return RemoteSource(
            target=target,
            conn=conn,
            response=response,
            deadline=deadline,
            length=length,
            max_bytes=max_bytes,
            chunk_size=chunk_size,
        )
