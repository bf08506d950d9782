"""Gateway settings: YAML file, environment overrides, the 0.3.0 config dict."""

import pytest
import yaml

from refstore import ConfigError
from refstore.web import init_web_service, web_app
from refstore.web.settings import GatewaySettings, load_settings, settings_from_library_config


@pytest.fixture
def clean_env(monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith("REFSTORE_"):
            monkeypatch.delenv(name)
    return monkeypatch


def write_yaml(tmp_path, data):
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_defaults_serve_the_local_backend_with_keys_required(clean_env):
    settings = GatewaySettings()
    assert settings.backend_name == "local"
    assert settings.store_config().local is not None
    assert settings.store_config().local.root == "./refstore-data"
    assert settings.auth.mode == "keys"
    assert settings.server.max_upload_bytes == 5 * 1024**3
    assert settings.url_fetch.block_private is True


def test_yaml_file_is_read_and_environment_overrides_it(clean_env, tmp_path):
    path = write_yaml(
        tmp_path,
        {
            "minio": {"endpoint": "minio:9000", "access_key": "ak", "secret_key": "sk"},
            "default_bucket": "from-yaml",
            "server": {"storage_threads": 8},
            "auth": {"admin_tokens": ["t1"]},
        },
    )
    clean_env.setenv("REFSTORE_DEFAULT_BUCKET", "from-env")
    clean_env.setenv("REFSTORE_MINIO__ENDPOINT", "other:9000")
    settings = load_settings(path)
    assert settings.default_bucket == "from-env"
    assert settings.minio is not None and settings.minio.endpoint == "other:9000"
    assert settings.minio.access_key == "ak"
    assert settings.server.storage_threads == 8
    assert settings.storage_threads == 8
    assert settings.store_config().max_concurrency == 8


def test_secrets_are_hidden_in_the_settings_repr(clean_env, tmp_path):
    path = write_yaml(
        tmp_path,
        {
            "minio": {"endpoint": "m:9000", "access_key": "ak", "secret_key": "very-secret"},
            "auth": {
                "admin_tokens": ["admin-secret"],
                "api_keys": [{"key": "key-secret", "project": "p", "buckets": ["b12"]}],
            },
        },
    )
    text = repr(load_settings(path))
    assert "very-secret" not in text and "admin-secret" not in text and "key-secret" not in text


def test_tokens_and_keys_can_come_from_mounted_files(clean_env, tmp_path):
    (tmp_path / "admins").write_text("tok-1\n\ntok-2\n")
    (tmp_path / "keys.yaml").write_text(
        yaml.safe_dump([{"key": "k", "project": "p", "buckets": ["bkt"], "prefix": "p"}])
    )
    path = write_yaml(
        tmp_path,
        {
            "auth": {
                "admin_tokens_file": str(tmp_path / "admins"),
                "api_keys_file": str(tmp_path / "keys.yaml"),
            }
        },
    )
    auth = load_settings(path).auth
    assert auth.all_admin_tokens() == ["tok-1", "tok-2"]
    [key] = auth.all_api_keys()
    assert key.prefix == "p/"


@pytest.mark.parametrize(
    "data",
    [
        {
            "minio": {"endpoint": "m:1", "access_key": "a", "secret_key": "s"},
            "local": {"root": "x"},
        },
        {"auth": {"mode": "sometimes"}},
        {"server": {"max_upload_bytes": 0}},
        {"unknown_section": 1},
    ],
)
def test_invalid_settings_are_config_errors(clean_env, tmp_path, data):
    with pytest.raises(ConfigError):
        load_settings(write_yaml(tmp_path, data))


def test_missing_config_file_is_a_config_error(clean_env, tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_settings(tmp_path / "absent.yaml")


def test_a_0_3_0_config_dict_becomes_gateway_settings(clean_env):
    settings = settings_from_library_config(
        {
            "minio": {"endpoint": "http://m:9000", "access_key": "a", "secret_key": "s"},
            "default_bucket": "shared-storage",
            "auth": {"mode": "none"},
        }
    )
    assert settings.default_bucket == "shared-storage"
    assert settings.minio is not None and settings.minio.endpoint == "m:9000"
    assert settings.auth.mode == "none"


def test_init_web_service_configures_the_module_app_before_it_starts(clean_env, tmp_path):
    settings = init_web_service({"local": {"root": str(tmp_path)}, "auth": {"mode": "none"}})
    assert web_app._settings is settings


# Every library field, set to a value other than its default: none may be lost on the way
# from a 0.3.0 dict (init_web_service) or a YAML file (refstore serve --config) to the store.
LIBRARY_VALUES = {
    "enable_bucket_mapping": True,
    "bucket_map": {"user": "phys-user"},
    "default_bucket": "shared-files",
    "presigned_expiry": 600,
    "public_url": "https://cdn.example.com/files",
    "part_size": 16 * 1024 * 1024,
    "max_concurrency": 2,
    "auto_create_buckets": False,
    "checksums": False,
    "sha256": False,
    "retry": {"max_retries": 7, "base_delay": 0.5, "max_delay": 9.0},
    "url_fetch": {"block_private": True, "max_bytes": 1000, "max_redirects": 1, "deadline": 9.0},
}
MINIO_VALUES = {
    "endpoint": "minio.internal:9443",
    "access_key": "ak",
    "secret_key": "sk",
    "secure": True,
    "region": "eu-west-1",
    "cert_check": False,
    "connect_timeout": 1.5,
    "read_timeout": 7.0,
}


def test_the_field_list_covers_every_library_field():
    from refstore.config import MinioSettings, StoreConfig

    assert set(LIBRARY_VALUES) | {"minio", "local", "public_endpoint"} == set(
        StoreConfig.model_fields
    )
    assert set(MINIO_VALUES) == set(MinioSettings.model_fields)
    defaults = StoreConfig(local={"root": "/x"})
    for name, value in LIBRARY_VALUES.items():
        assert getattr(defaults, name) != value or name == "url_fetch", name


def kept_fields(store_config):
    data = store_config.to_dict()
    return {name: data[name] for name in LIBRARY_VALUES}, data["minio"]


@pytest.mark.parametrize("field", sorted(LIBRARY_VALUES))
def test_init_web_service_keeps_every_library_field(clean_env, field):
    config = {"minio": dict(MINIO_VALUES), **LIBRARY_VALUES, "auth": {"mode": "none"}}
    settings = settings_from_library_config(config)
    library, minio = kept_fields(settings.store_config())
    assert library[field] == LIBRARY_VALUES[field]
    assert minio == MINIO_VALUES


@pytest.mark.parametrize("field", sorted(LIBRARY_VALUES))
def test_a_yaml_file_keeps_every_library_field(clean_env, tmp_path, field):
    path = write_yaml(tmp_path, {"minio": dict(MINIO_VALUES), **LIBRARY_VALUES})
    library, minio = kept_fields(load_settings(path).store_config())
    assert library[field] == LIBRARY_VALUES[field]
    assert minio == MINIO_VALUES


def test_the_gateway_runs_as_many_storage_threads_as_max_concurrency(clean_env, tmp_path):
    import asyncio

    from refstore.web import create_app

    settings = settings_from_library_config(
        {"local": {"root": str(tmp_path)}, "max_concurrency": 2, "auth": {"mode": "none"}}
    )
    app = create_app(settings)

    async def started_gateway():
        async with app.router.lifespan_context(app):
            return app.state.gateway

    gateway = asyncio.run(started_gateway())
    assert gateway.executor._max_workers == 2
    assert gateway.store.max_concurrency == 2
    # Uploads run in a pool of their own, sized by the uploads admitted at once.
    assert gateway.uploads.max_concurrency == settings.server.max_concurrent_uploads == 64
    assert gateway.upload_executor is not gateway.executor


def test_server_storage_threads_still_sets_the_pool_size(clean_env):
    settings = load_settings(local={"root": "/tmp/x"}, server={"storage_threads": 5})
    assert settings.store_config().max_concurrency == 5


def test_the_gateway_guards_url_fetches_by_default_even_when_the_section_is_partial(
    clean_env, tmp_path
):
    settings = load_settings(write_yaml(tmp_path, {"url_fetch": {"max_bytes": 10}}))
    assert settings.url_fetch.block_private is True
    assert settings.url_fetch.deadline == 300.0
    assert settings.store_config().url_fetch.block_private is True


def test_load_settings_leaves_the_environment_alone(clean_env, tmp_path):
    import os

    path = write_yaml(tmp_path, {"default_bucket": "from-file"})
    before = dict(os.environ)
    assert load_settings(path).default_bucket == "from-file"
    assert dict(os.environ) == before
    assert GatewaySettings().default_bucket == "default"  # the file was for that call only


def test_gateway_errors_use_the_library_messages(clean_env, tmp_path):
    with pytest.raises(ConfigError, match=r"minio\.endpoint: port must be an integer"):
        load_settings(write_yaml(tmp_path, {"minio": {**MINIO_VALUES, "endpoint": "m:http"}}))
    with pytest.raises(ConfigError, match="presigned_expiry") as caught:
        settings_from_library_config({"local": {"root": "/x"}, "presigned_expiry": "3600"})
    assert "valid integer" in str(caught.value)
