from pathlib import Path

import pytest

from drape.services.runtime.config import ConfigError, load_config


def test_defaults_are_valid_and_distinct_ports():
    config = load_config(env={})
    ports = [
        config.server(s).port
        for s in ("gateway", "recommend", "features", "tryon", "splice", "events")
    ]
    assert len(set(ports)) == 6
    assert config.events.sqlite_synchronous == "FULL"
    assert config.events_store_url().startswith("sqlite:///")


def test_file_then_env_override(tmp_path: Path):
    path = tmp_path / "drape.toml"
    path.write_text("[events]\nmax_batch = 50\n[events.server]\nport = 7000\n")
    config = load_config(path, env={"DRAPE_EVENTS__SERVER__PORT": "7001"})
    assert config.events.max_batch == 50
    assert config.events.server.port == 7001  # env wins over file


def test_a_setting_from_a_file_named_in_the_env(tmp_path: Path):
    """DRAPE_..._FILE: a Secret mounted as a file (its URL never in the env); the trailing
    newline `kubectl create secret --from-file` keeps is dropped."""
    secret = tmp_path / "store-url"
    secret.write_text("postgresql://drape:s3cret@db:5432/drape\n")
    config = load_config(env={"DRAPE_EVENTS__STORE_URL_FILE": str(secret)})
    assert config.events_store_url() == "postgresql://drape:s3cret@db:5432/drape"
    with pytest.raises(ConfigError, match=r"DRAPE_EVENTS__STORE_URL_FILE: cannot read .*absent"):
        load_config(env={"DRAPE_EVENTS__STORE_URL_FILE": str(tmp_path / "absent")})
    with pytest.raises(ConfigError, match="both set: keep one"):
        load_config(
            env={"DRAPE_EVENTS__STORE_URL_FILE": str(secret), "DRAPE_EVENTS__STORE_URL": "x"}
        )


def test_no_setting_ends_in_file_so_the_suffix_is_unambiguous():
    from pydantic import BaseModel

    from drape.services.runtime.config import DrapeConfig

    def names(model: type[BaseModel]) -> list[str]:
        found = []
        for name, info in model.model_fields.items():
            found.append(name)
            kind = info.annotation
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                found += names(kind)
        return found

    fields = names(DrapeConfig)
    assert "store_url" in fields and not [n for n in fields if n.endswith("_file")]


def test_yaml_file(tmp_path: Path):
    path = tmp_path / "drape.yaml"
    path.write_text("recommend:\n  half_life_days: 3.5\n")
    assert load_config(path, env={}).recommend.half_life_days == 3.5


def test_invalid_env_value_names_the_variable():
    with pytest.raises(ConfigError) as err:
        load_config(env={"DRAPE_EVENTS__SERVER__PORT": "70000"})
    assert "events.server.port (from DRAPE_EVENTS__SERVER__PORT)" in str(err.value)
    assert "less than or equal to 65535" in str(err.value)


def test_unknown_setting_is_rejected(tmp_path: Path):
    path = tmp_path / "drape.json"
    path.write_text('{"events": {"max_bacth": 10}}')
    with pytest.raises(ConfigError, match=r"events\.max_bacth"):
        load_config(path, env={})


def test_bad_choice_and_missing_file(tmp_path: Path):
    with pytest.raises(ConfigError, match="sqlite_synchronous"):
        load_config(env={"DRAPE_EVENTS__SQLITE_SYNCHRONOUS": "OFF"})
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.toml", env={})
    bad = tmp_path / "bad.toml"
    bad.write_text("events = [")
    with pytest.raises(ConfigError, match="not valid"):
        load_config(bad, env={})


def test_unknown_service_name():
    with pytest.raises(ConfigError, match="unknown service"):
        load_config(env={}).server("billing")


def test_the_repeat_policy_from_a_file_or_the_environment(tmp_path: Path):
    assert load_config(None, env={}).recommend.exclude_after == ["purchase"]
    env = {"DRAPE_RECOMMEND__EXCLUDE_AFTER": "purchase, add_to_cart"}
    assert load_config(None, env=env).recommend.exclude_after == ["purchase", "add_to_cart"]
    assert (
        load_config(None, env={"DRAPE_RECOMMEND__EXCLUDE_AFTER": ""}).recommend.exclude_after == []
    )
    config = tmp_path / "drape.yaml"
    config.write_text("recommend:\n  exclude_after: [purchase, view]\n")
    assert load_config(config, env={}).recommend.exclude_after == ["purchase", "view"]
    with pytest.raises(
        ConfigError, match=r"recommend.exclude_after.0: Input should be 'impression'"
    ):
        load_config(None, env={"DRAPE_RECOMMEND__EXCLUDE_AFTER": "bought"})
