"""Upload session ids: a multipart upload, its owner and its deadline, signed.

The gateway keeps no state of its own (many replicas share the work), so a session id
carries what every request of the session needs, HMAC-signed with a key all replicas
share. Any replica can continue a session another one started, and nobody can forge
one, move it to another object, or stretch its deadline.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass

from .. import errors
from ..uploads import MultipartUpload

_MAC_BYTES = 18


@dataclass(frozen=True)
class UploadSession:
    """One upload session: the upload, who started it, and until when it may go on.

    Attributes:
        owner: The starting key's identity (:attr:`Principal.identity`).
        expires: Deadline, in seconds since the epoch.
        logic_bucket: The bucket as the client named it (the upload's is physical).
    """

    upload: MultipartUpload
    owner: str
    expires: int
    logic_bucket: str

    @property
    def uri(self) -> str:
        """The target as the client named it."""
        return f"s3://{self.logic_bucket}/{self.upload.key}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionSigner:
    """Encodes sessions into ids and checks ids back into sessions."""

    def __init__(self, secret: bytes) -> None:
        self._secret = hashlib.sha256(b"refstore upload sessions\n" + secret).digest()

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()[:_MAC_BYTES]

    def encode(self, session: UploadSession) -> str:
        upload = session.upload
        fields = {
            "b": upload.bucket,
            "k": upload.key,
            "u": upload.upload_id,
            "p": upload.part_size,
            "s": upload.size,
            "o": session.owner,
            "e": session.expires,
            "l": session.logic_bucket,
        }
        payload = json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def decode(self, session_id: str, now: float) -> UploadSession:
        """The session ``session_id`` names.

        Raises:
            UploadNotFoundError: malformed or forged (the same answer for both).
            UploadExpiredError: its deadline has passed.
        """
        missing = errors.UploadNotFoundError("no such upload session")
        encoded, _, mac = session_id.partition(".")
        try:
            payload = _unb64(encoded)
            valid = hmac.compare_digest(self._mac(payload), _unb64(mac))
        except (ValueError, TypeError):
            raise missing from None
        if not valid:
            raise missing
        fields = json.loads(payload)
        session = UploadSession(
            MultipartUpload(fields["b"], fields["k"], fields["u"], fields["p"], fields["s"]),
            owner=fields["o"],
            expires=fields["e"],
            logic_bucket=fields["l"],
        )
        if now > session.expires:
            raise errors.UploadExpiredError(
                f"the upload session of {session.uri} expired; start a new one",
                bucket=session.upload.bucket,
                key=session.upload.key,
            )
        return session
