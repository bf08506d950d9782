"""What the client commands talk to: a gateway, or storage directly.

Both targets offer the same operations so every command works either way:
``--gateway URL`` goes through :class:`~refstore.gateway.GatewayClient`;
``--config FILE`` opens a :class:`~refstore.RefStore` on the MinIO or local
backend that file describes (the same YAML file ``refstore serve`` reads).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from .. import errors
from ..progress import ProgressCallback
from ..sizes import format_size
from ..uri import decode_uri

if TYPE_CHECKING:
    from ..config import StoreConfig

GATEWAY_ENV = "REFSTORE_GATEWAY_URL"
CONFIG_ENV = "REFSTORE_CONFIG"


class Target(Protocol):
    """The operations the CLI needs, answered with plain dicts."""

    description: str

    def default_bucket(self) -> str: ...

    def upload_file(
        self,
        local_path: Path,
        uri: str,
        progress: ProgressCallback | None,
        note: Callable[[str], None] | None = None,
    ) -> dict[str, Any]: ...

    def upload_stream(
        self, stream: BinaryIO, uri: str, progress: ProgressCallback | None
    ) -> dict[str, Any]: ...

    def download_to(
        self, uri: str, local_path: Path, progress: ProgressCallback | None
    ) -> None: ...

    def iter_download(self, uri: str) -> Iterator[bytes]: ...

    def iter_objects(
        self, bucket: str | None, prefix: str, recursive: bool
    ) -> Iterator[dict[str, Any]]: ...

    def info(self, uri: str) -> dict[str, Any]: ...

    def delete(self, uris: list[str]) -> dict[str, Any]: ...

    def presign(self, uri: str, expiry: int | None, method: str) -> str: ...

    def list_buckets(self) -> list[dict[str, Any]]: ...

    def create_bucket(self, name: str) -> None: ...

    def delete_bucket(self, name: str, force: bool) -> None: ...

    def get_mapping(self) -> dict[str, Any]: ...

    def set_mapping(
        self,
        enabled: bool | None,
        bucket_map: Mapping[str, str] | None,
        version: Mapping[str, Any] | None,
    ) -> dict[str, Any]: ...

    def status(self) -> dict[str, Any]: ...

    def pending_uploads(self, bucket: str | None, prefix: str) -> list[dict[str, Any]]: ...

    def resumable_uploads(self) -> list[dict[str, Any]]: ...

    def abort_upload(self, upload_id: str) -> dict[str, Any]: ...

    def close(self) -> None: ...


class GatewayTarget:
    """A RefStore gateway, through the SDK (retries, direct transfers of big files)."""

    def __init__(self, url: str, api_key: str | None, timeout: float) -> None:
        try:
            from ..gateway import GatewayClient
        except ImportError as exc:  # pragma: no cover - depends on the installed extras
            raise errors.ConfigError(
                'talking to a gateway needs httpx: pip install "refstore[gateway]"'
            ) from exc
        self.client = GatewayClient(url, timeout=timeout, api_key=api_key)
        self.description = f"gateway {self.client.gateway_url}"

    def default_bucket(self) -> str:
        return str(self.client.get_status()["default_bucket"])

    def upload_file(
        self,
        local_path: Path,
        uri: str,
        progress: ProgressCallback | None,
        note: Callable[[str], None] | None = None,
    ) -> dict[str, Any]:
        bucket, key = decode_uri(uri)
        folder, _, name = key.rpartition("/")
        threshold = self.client.session_threshold
        if threshold is not None and local_path.stat().st_size >= threshold:
            # Parallel parts, resumed by running the same command again.
            def resumed(parts: int, stored: int) -> None:
                if note is not None:
                    note(
                        f"resuming the interrupted upload of {local_path}: {parts} parts "
                        f"({format_size(stored)}) already stored"
                    )

            result = self.client.upload_large(local_path, uri, progress=progress, on_resume=resumed)
        elif folder and name == local_path.name:
            # upload_from_local may send big files straight to storage (presigned PUT).
            result = self.client.upload_from_local(local_path, bucket, folder, progress=progress)
        else:
            with local_path.open("rb") as file:
                result = self.client.upload_to(uri, file, progress=progress)
        return {"uri": result["uri"], "size": result["size"]}

    def upload_stream(
        self, stream: BinaryIO, uri: str, progress: ProgressCallback | None
    ) -> dict[str, Any]:
        result = self.client.upload_to(uri, stream, progress=progress)
        return {"uri": result["uri"], "size": result["size"]}

    def download_to(self, uri: str, local_path: Path, progress: ProgressCallback | None) -> None:
        self.client.download_to_local(uri, local_path, raise_errors=True, progress=progress)

    def iter_download(self, uri: str) -> Iterator[bytes]:
        return self.client.iter_bytes(uri)

    def iter_objects(
        self, bucket: str | None, prefix: str, recursive: bool
    ) -> Iterator[dict[str, Any]]:
        return iter(self.client.list_files(bucket, prefix, recursive)["files"])

    def info(self, uri: str) -> dict[str, Any]:
        from ..gateway._core import missing_object

        answer = self.client.get_file_info(uri)
        if not answer["exists"] or answer["info"] is None:
            raise missing_object(uri)
        return answer["info"]

    def delete(self, uris: list[str]) -> dict[str, Any]:
        return dict(self.client.delete_files(uris))

    def presign(self, uri: str, expiry: int | None, method: str) -> str:
        return self.client.get_presigned_url(uri, expiry, method)["url"]

    def list_buckets(self) -> list[dict[str, Any]]:
        return list(self.client.list_buckets()["buckets"])

    def create_bucket(self, name: str) -> None:
        self.client.create_bucket(name)

    def delete_bucket(self, name: str, force: bool) -> None:
        self.client.delete_bucket(name, force)

    def get_mapping(self) -> dict[str, Any]:
        return self.client.get_bucket_mapping()

    def set_mapping(
        self,
        enabled: bool | None,
        bucket_map: Mapping[str, str] | None,
        version: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        return self.client.update_bucket_mapping(enabled, bucket_map, version=version)

    def status(self) -> dict[str, Any]:
        return {"target": self.description, **self.client.get_status()}

    def pending_uploads(self, bucket: str | None, prefix: str) -> list[dict[str, Any]]:
        return self.client.list_uploads(bucket, prefix)

    def resumable_uploads(self) -> list[dict[str, Any]]:
        return self.client.resumable_uploads()

    def abort_upload(self, upload_id: str) -> dict[str, Any]:
        return self.client.abort_upload(upload_id)

    def close(self) -> None:
        self.client.close()


class DirectTarget:
    """MinIO or the local backend, straight through the library (no gateway)."""

    def __init__(self, config_file: str) -> None:
        from ..store import RefStore

        self.store = RefStore(_store_config(config_file))
        backend = "minio" if self.store.settings.minio else "local"
        where = (
            self.store.settings.minio.endpoint
            if self.store.settings.minio
            else self.store.settings.local.root
            if self.store.settings.local
            else ""
        )
        self.description = f"{backend} backend {where} (from {config_file})"

    def default_bucket(self) -> str:
        return self.store.default_bucket

    def upload_file(
        self,
        local_path: Path,
        uri: str,
        progress: ProgressCallback | None,
        note: Callable[[str], None] | None = None,
    ) -> dict[str, Any]:
        with local_path.open("rb") as file:
            return self.upload_stream(file, uri, progress)

    def upload_stream(
        self, stream: BinaryIO, uri: str, progress: ProgressCallback | None
    ) -> dict[str, Any]:
        import mimetypes

        content_type = mimetypes.guess_type(uri)[0] or "application/octet-stream"
        info = self.store.upload_to(uri, stream, content_type, progress=progress)
        return {"uri": uri, "size": info.size}

    def download_to(self, uri: str, local_path: Path, progress: ProgressCallback | None) -> None:
        self.store.download_to_local(uri, local_path, progress=progress)

    def iter_download(self, uri: str) -> Iterator[bytes]:
        return self.store.iter_file(uri)

    def iter_objects(
        self, bucket: str | None, prefix: str, recursive: bool
    ) -> Iterator[dict[str, Any]]:
        return self.store.iter_files(bucket, prefix, recursive)

    def info(self, uri: str) -> dict[str, Any]:
        return self.store.get_file_info(uri)

    def delete(self, uris: list[str]) -> dict[str, Any]:
        return self.store.delete_files(uris)

    def presign(self, uri: str, expiry: int | None, method: str) -> str:
        return self.store.get_presigned_url(uri, expiry, method)

    def list_buckets(self) -> list[dict[str, Any]]:
        return self.store.bucket_manager.list_buckets()

    def create_bucket(self, name: str) -> None:
        self.store.bucket_manager.create_bucket(name)

    def delete_bucket(self, name: str, force: bool) -> None:
        self.store.bucket_manager.delete_bucket(name, force)

    def get_mapping(self) -> dict[str, Any]:
        current = self.store.mapping.current
        return {"enable_bucket_mapping": current.enabled, "bucket_map": dict(current.forward)}

    def set_mapping(
        self,
        enabled: bool | None,
        bucket_map: Mapping[str, str] | None,
        version: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        raise errors.InvalidInputError(
            "without a gateway the bucket mapping comes from the config file: edit "
            "'enable_bucket_mapping' and 'bucket_map' there, or use --gateway"
        )

    def pending_uploads(self, bucket: str | None, prefix: str) -> list[dict[str, Any]]:
        bucket = bucket or self.store.default_bucket
        return [
            {
                "uri": f"s3://{bucket}/{u.key}",
                "backend_upload_id": u.upload_id,
                "started": u.started,
            }
            for u in self.store.list_uploads(bucket, prefix)
        ]

    def resumable_uploads(self) -> list[dict[str, Any]]:
        return []  # uploads straight to storage are single streams: nothing to resume

    def abort_upload(self, upload_id: str) -> dict[str, Any]:
        raise errors.InvalidInputError(
            "upload sessions belong to a gateway: use --gateway (without one, abandoned "
            "multipart uploads are removed by the gateway's sweeper and MinIO's lifecycle rule)"
        )

    def status(self) -> dict[str, Any]:
        self.store.ping()
        return {
            "target": self.description,
            "status": "connected",
            "default_bucket": self.store.default_bucket,
            "enable_bucket_mapping": self.store.enable_bucket_mapping,
            "bucket_count": len(self.store.bucket_manager.list_buckets()),
        }

    def close(self) -> None:
        self.store.close()


def _store_config(config_file: str) -> StoreConfig:
    """The RefStore config of a gateway settings file (plus ``REFSTORE_*`` variables)."""
    try:
        from ..web.settings import load_settings
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise errors.ConfigError(
            'reading --config needs pydantic-settings and PyYAML: pip install "refstore[web]"'
        ) from exc
    return load_settings(config_file).store_config()


def open_target(
    gateway: str | None, config: str | None, api_key: str | None, timeout: float
) -> Target:
    """The target the options (or, failing them, the environment) name.

    Raises:
        ConfigError: neither a gateway nor a config file is given, or both are.
    """
    if gateway and config:
        raise errors.ConfigError("give --gateway or --config, not both")
    if not gateway and not config:
        gateway = os.environ.get(GATEWAY_ENV) or None
        config = None if gateway else os.environ.get(CONFIG_ENV) or None
    if gateway:
        return GatewayTarget(gateway, api_key, timeout)
    if config:
        return DirectTarget(config)
    raise errors.ConfigError(
        f"no target: pass --gateway URL (or set {GATEWAY_ENV}) to use a gateway, or "
        f"--config FILE (or set {CONFIG_ENV}) to use MinIO or the local backend directly"
    )
