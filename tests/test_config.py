import warnings

import pytest

from refstore import ConfigError, ConfigValidator, StoreConfig

MINIO = {"endpoint": "localhost:9000", "access_key": "ak", "secret_key": "sk"}


def test_minimal_config_gets_the_seed_defaults():
    config = ConfigValidator.normalize_config({"minio": dict(MINIO)})
    assert config["minio"]["secure"] is False
    assert config["default_bucket"] == "default"
    assert config["presigned_expiry"] == 3600
    assert config["enable_bucket_mapping"] is False
    assert config["bucket_map"] == {}


def test_validation_does_not_modify_the_callers_dict():
    original = {"minio": dict(MINIO)}
    ConfigValidator.validate_config(original)
    assert original == {"minio": dict(MINIO)}


@pytest.mark.parametrize(
    ("endpoint", "secure"), [("https://s3.local:443", True), ("http://s3.local:9000", False)]
)
def test_scheme_prefix_sets_secure_and_is_stripped(endpoint, secure):
    config = ConfigValidator.validate_config(
        {"minio": {**MINIO, "endpoint": endpoint, "secure": not secure}}
    )
    assert config["minio"]["secure"] is secure
    assert "://" not in config["minio"]["endpoint"]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "exactly one backend"),
        ({"minio": dict(MINIO), "local": {"root": "/tmp/x"}}, "exactly one backend"),
        ({"minio": {**MINIO, "endpoint": "localhost"}}, "host:port"),
        ({"minio": {**MINIO, "endpoint": "localhost:http"}}, "port"),
        ({"minio": {**MINIO, "endpoint": "localhost:70000"}}, "port"),
        ({"minio": {**MINIO, "access_key": ""}}, "access_key"),
        ({"minio": {"endpoint": "h:1", "access_key": "a"}}, "secret_key"),
        ({"minio": {**MINIO, "read_timeout": 0}}, "read_timeout"),
        ({"minio": dict(MINIO), "presigned_expiry": 0}, "presigned_expiry"),
        ({"minio": dict(MINIO), "presigned_expiry": "3600"}, "presigned_expiry"),
        ({"minio": dict(MINIO), "presigned_expiry": 8 * 24 * 3600}, "presigned_expiry"),
        ({"minio": dict(MINIO), "public_url": "cdn.example.com"}, "public_url"),
        ({"minio": dict(MINIO), "public_url": "https://"}, "public_url"),
        ({"minio": dict(MINIO), "public_endpoint": "https://s3.example.com/prefix"}, "path"),
        ({"minio": dict(MINIO), "enable_bucket_mapping": True}, "bucket_map"),
        ({"minio": dict(MINIO), "enable_bucket_mapping": "yes"}, "enable_bucket_mapping"),
        (
            {"minio": dict(MINIO), "enable_bucket_mapping": True, "bucket_map": {"u": "Bad_Name"}},
            "bucket",
        ),
        ({"minio": dict(MINIO), "default_bucket": "UPPER"}, "default_bucket"),
        ({"minio": dict(MINIO), "part_size": 1024}, "part_size"),
        ({"minio": dict(MINIO), "typo_key": 1}, "typo_key"),
        ({"local": {}}, "local.root"),
        ("not a dict", "dict"),
    ],
)
def test_invalid_configs_name_the_problem(config, message):
    with pytest.raises(ConfigError, match=message):
        ConfigValidator.validate_config(config)


def test_bucket_map_without_the_switch_turns_mapping_on_with_a_warning():
    with pytest.warns(DeprecationWarning, match="enable_bucket_mapping"):
        config = ConfigValidator.validate_config(
            {"minio": dict(MINIO), "bucket_map": {"user": "phys-user"}}
        )
    assert config["enable_bucket_mapping"] is True


def test_explicit_switch_with_bucket_map_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        config = ConfigValidator.validate_config(
            {
                "minio": dict(MINIO),
                "enable_bucket_mapping": False,
                "bucket_map": {"user": "phys-user"},
            }
        )
    assert config["enable_bucket_mapping"] is False


def test_schema_describes_both_backends_and_is_a_copy():
    schema = ConfigValidator.get_config_schema()
    assert {"minio", "local", "bucket_map", "public_url"} <= set(schema["properties"])
    schema["properties"].clear()
    assert ConfigValidator.get_config_schema()["properties"]


SEED_CONFIG = {
    "minio": {"endpoint": "localhost:9000", "access_key": "a", "secret_key": "s", "secure": False},
    "enable_bucket_mapping": False,
    "bucket_map": {"user": "physical-user-bucket", "public": "physical-public-bucket"},
    "default_bucket": "default",
    "presigned_expiry": 3600,
    "public_url": "https://cdn.example.com",
}

# (config, what is wrong): a standard JSON Schema validator refuses each of them.
SCHEMA_REFUSES = [
    ({}, "no backend"),
    ({"minio": dict(MINIO), "local": {"root": "/x"}}, "two backends"),
    ({"minio": None}, "a null backend"),
    ({"local": {}}, "local without root"),
    ({"minio": {"endpoint": "h:1", "access_key": "a"}}, "no secret_key"),
    ({"minio": {**MINIO, "endpoint": "localhost"}}, "endpoint without a port"),
    ({"minio": {**MINIO, "secure": "yes"}}, "secure not a bool"),
    ({"minio": {**MINIO, "read_timeout": 0}}, "timeout not positive"),
    ({"minio": {**MINIO, "typo": 1}}, "unknown minio key"),
    ({"minio": dict(MINIO), "typo_key": 1}, "unknown top-level key"),
    ({"minio": dict(MINIO), "presigned_expiry": "3600"}, "expiry a string"),
    ({"minio": dict(MINIO), "presigned_expiry": 0}, "expiry zero"),
    ({"minio": dict(MINIO), "presigned_expiry": 8 * 24 * 3600}, "expiry over 7 days"),
    ({"minio": dict(MINIO), "part_size": 1024}, "part below 5 MiB"),
    ({"minio": dict(MINIO), "max_concurrency": 0}, "no concurrency"),
    ({"minio": dict(MINIO), "default_bucket": "UPPER"}, "bucket name"),
    (
        {"minio": dict(MINIO), "enable_bucket_mapping": True, "bucket_map": {"user": 1}},
        "physical name not a string",
    ),
    ({"minio": dict(MINIO), "retry": {"max_retries": -1}}, "negative retries"),
    ({"minio": dict(MINIO), "url_fetch": {"max_bytes": 0}}, "zero max_bytes"),
]


@pytest.mark.parametrize(("config", "problem"), SCHEMA_REFUSES, ids=[p for _, p in SCHEMA_REFUSES])
def test_a_standard_validator_enforces_the_schema(config, problem):
    import jsonschema

    validator = jsonschema.Draft202012Validator(ConfigValidator.get_config_schema())
    assert not validator.is_valid(config), problem
    with pytest.raises(ConfigError):
        ConfigValidator.validate_config(config)


@pytest.mark.parametrize(
    "config",
    [
        SEED_CONFIG,
        {"local": {"root": "/srv/refstore"}},
        {"minio": {**MINIO, "endpoint": "https://s3.local:443"}, "part_size": 16 * 1024**2},
        {"local": {"root": "/x", "secret": None}, "url_fetch": {"deadline": None}},
    ],
)
def test_valid_configs_pass_the_schema_and_the_validator(config):
    import jsonschema

    jsonschema.Draft202012Validator(ConfigValidator.get_config_schema()).validate(config)
    normalised = ConfigValidator.validate_config(config)
    assert ConfigValidator.validate_config(normalised) == normalised


def test_the_schema_is_a_valid_json_schema():
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(ConfigValidator.get_config_schema())


def test_errors_name_every_field_at_fault_and_never_show_a_secret():
    config = {
        "minio": {"endpoint": "h:1", "access_key": "a", "secret_key": 12345},
        "part_size": 1,
    }
    with pytest.raises(ConfigError) as caught:
        ConfigValidator.validate_config(config)
    message = str(caught.value)
    assert "minio.secret_key" in message and "part_size" in message
    assert "12345" not in message


def test_typed_config_hides_the_secret_in_repr():
    settings = StoreConfig.from_dict({"minio": {**MINIO, "secret_key": "s3cr3t-value"}})
    assert "s3cr3t-value" not in repr(settings)
    assert settings.minio is not None
    assert settings.minio.secret_key.get_secret_value() == "s3cr3t-value"
    assert ConfigValidator.validate_config({"minio": MINIO})["minio"]["secret_key"] == "sk"


def test_test_connection_on_a_local_root(tmp_path):
    assert ConfigValidator.test_connection({"local": {"root": str(tmp_path)}}) is True
