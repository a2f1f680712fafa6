"""`orderbridge up` pushes to its own backend, whichever port it runs on, also with config.example.toml copied
to orderbridge.toml as README says (the example documents the target's default; it must not fix it to 8080)."""
from pathlib import Path

from connector.config import from_dict, load_config
from daemon.commands.up import connector_config

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.toml"


def test_the_copied_example_pushes_to_the_port_up_runs_on():
    config = connector_config(load_config(EXAMPLE), "127.0.0.1", 8099)
    assert config.target.url == "http://127.0.0.1:8099/api/v1"


def test_a_target_named_in_the_config_is_kept():
    config = from_dict({"target": {"url": "https://yespo.io/api/v1"}})
    assert connector_config(config, "0.0.0.0", 8099).target.url == "https://yespo.io/api/v1"


def test_a_wildcard_host_is_reached_on_loopback():
    assert connector_config(from_dict({}), "0.0.0.0", 9000).target.url == "http://127.0.0.1:9000/api/v1"
