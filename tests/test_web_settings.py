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
    assert settings.library_config()["local"]["root"] == "./refstore-data"
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
    assert settings.library_config()["max_concurrency"] == 8


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
