"""Who is calling, and what they may touch.

Admin tokens may do everything, including ``/gateway/*`` changes. Project keys are
scoped to buckets, a key prefix and a set of actions. Bucket-mapping tokens (the
operator's) may read and update ``/gateway/bucket-mapping`` and nothing else. Tokens
are compared in constant time and never logged or returned.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass, field

from ..errors import AuthenticationError, PermissionDeniedError
from ..mapping import BucketMap
from .settings import Action, AuthSection

logger = logging.getLogger("refstore.web.auth")


@dataclass(frozen=True)
class Principal:
    """The caller of one request."""

    name: str
    admin: bool = False
    buckets: frozenset[str] = frozenset()
    prefix: str = ""
    actions: frozenset[Action] = field(default_factory=lambda: frozenset(Action))
    mapping_only: bool = False
    identity: str = ""  # which key this is (a digest prefix), for what only it may continue

    def require_admin(self) -> None:
        """Raises: PermissionDeniedError unless this is an admin."""
        if not self.admin:
            raise PermissionDeniedError(f"{self.name} is not an admin")

    def require_mapping_access(self) -> None:
        """Raises: PermissionDeniedError unless this may read and update the bucket mapping."""
        if not (self.admin or self.mapping_only):
            raise PermissionDeniedError(f"{self.name} may not use the bucket mapping")

    def require_general_access(self) -> None:
        """Raises: PermissionDeniedError for a bucket-mapping token, which may do nothing else."""
        if self.mapping_only:
            raise PermissionDeniedError(
                f"{self.name} may only read and update /gateway/bucket-mapping"
            )

    def require(self, action: Action, bucket: str, key: str, mapping: BucketMap) -> None:
        """Check that ``action`` on ``bucket``/``key`` is in scope.

        ``key`` is an object key, or a listing prefix for ``Action.list``. Buckets are
        compared after mapping, so logical and physical names are equivalent.

        Raises:
            PermissionDeniedError: out of scope; the message says how.
        """
        if self.admin:
            return
        if action not in self.actions:
            raise PermissionDeniedError(f"{self.name} may not {action.value}")
        allowed = {mapping.physical(name) for name in self.buckets}
        if mapping.physical(bucket) not in allowed:
            raise PermissionDeniedError(f"{self.name} may not use bucket {bucket}")
        if not key.startswith(self.prefix):
            raise PermissionDeniedError(f"{self.name} may only use keys under {self.prefix!r}")

    def scoped_prefix(self, requested: str) -> str:
        """The listing prefix to use: narrowed to the key's prefix when it is wider."""
        if self.admin or requested.startswith(self.prefix):
            return requested
        if self.prefix.startswith(requested):
            return self.prefix
        raise PermissionDeniedError(f"{self.name} may only list under {self.prefix!r}")


ANONYMOUS_ADMIN = Principal("anonymous", admin=True, identity="anonymous")
MAPPING_WRITER = Principal("bucket-mapping-token", actions=frozenset(), mapping_only=True)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Authenticator:
    """Maps a bearer token to a :class:`Principal`."""

    def __init__(self, auth: AuthSection) -> None:
        self.mode = auth.mode
        # Compare digests so every comparison takes the same time whatever the length.
        self._admins = [_digest(token) for token in auth.all_admin_tokens()]
        self._mapping_writers = [_digest(token) for token in auth.all_mapping_tokens()]
        self._keys = [
            (
                _digest(key.key.get_secret_value()),
                Principal(
                    key.project,
                    buckets=frozenset(key.buckets),
                    prefix=key.prefix,
                    actions=frozenset(key.actions),
                    identity=_digest(key.key.get_secret_value()).hex()[:16],
                ),
            )
            for key in auth.all_api_keys()
        ]

    @property
    def has_credentials(self) -> bool:
        return bool(self._admins or self._keys or self._mapping_writers)

    def authenticate(self, authorization: str | None) -> Principal:
        """Principal for an ``Authorization`` header value.

        Raises:
            AuthenticationError: missing, malformed or unknown token.
        """
        if self.mode == "none":
            return ANONYMOUS_ADMIN
        if not authorization:
            raise AuthenticationError("missing bearer token (Authorization: Bearer <key>)")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError("Authorization must be 'Bearer <key>'")
        digest = _digest(token.strip())
        found: Principal | None = None
        for admin in self._admins:
            if hmac.compare_digest(admin, digest):
                found = Principal("admin", admin=True, identity="admin")
        for key_digest, principal in self._keys:
            if hmac.compare_digest(key_digest, digest):
                found = found or principal
        for writer in self._mapping_writers:
            if hmac.compare_digest(writer, digest):
                found = found or MAPPING_WRITER
        if found is None:
            raise AuthenticationError("unknown bearer token")
        return found
