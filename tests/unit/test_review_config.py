"""Config keys of the wrong type or shape are named as ConfigErrors, never met later as stack traces."""
import pytest

from connector.config import from_dict, load_config
from connector.errors import ConfigError
from daemon.cli import main


@pytest.mark.parametrize("raw, named", [
    ({"target": {"batch_size": "abc"}}, "[target] batch_size"),
    ({"target": {"batch_size": 0}}, "[target] batch_size"),
    ({"target": {"url": "not a url"}}, "[target] url"),
    ({"target": {"url": 5}}, "[target] url"),
    ({"connector": {"database": "foo://bar"}}, "[connector] database"),
    ({"backend": {"database": "mysql://x"}}, "[backend] database"),
    ({"backend": {"rate_limit": "fast"}}, "[backend] rate_limit"),
    ({"backend": {"max_body": "32MiB"}}, "[backend] max_body"),
    ({"daemon": {"max_attempts": "x"}}, "[daemon] max_attempts"),
    ({"daemon": {"retry_schedule": "30s"}}, "[daemon] retry_schedule"),
    ({"shops": [{"name": "m", "platform": "shopify", "access_token_env": 5}]}, "access_token_env"),
    ({"shops": [{"name": "m", "platform": "shopify", "status_map": {"paid": 3}}]}, "status_map"),
])
def test_wrong_types_are_named(raw, named):
    with pytest.raises(ConfigError) as e:
        from_dict(raw)
    assert named in str(e.value)


def test_good_values_still_load():
    c = from_dict({"connector": {"database": "postgresql://u@h/db"}, "backend": {"database": "sqlite://", "rate_limit": 0},
                   "target": {"url": "https://yespo.io/api/v1", "batch_size": 500},
                   "daemon": {"retry_schedule": ["30s", "5m"], "max_attempts": 3}})
    assert c.target.batch_size == 500 and c.daemon.retry_schedule == (30.0, 300.0)


def test_unreadable_config_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config(tmp_path)                      # a directory
    latin = tmp_path / "c.toml"
    latin.write_bytes('[backend]\norganisation_name = "Caf\xe9"\n'.encode("cp1252"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(latin)


def test_the_cli_says_what_is_wrong_without_a_stack_trace(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[target]\nbatch_size = "abc"\n')
    assert main(["--config", str(cfg), "outbox", "status"]) == 2
    err = capsys.readouterr().err
    assert "[target] batch_size" in err and "Traceback" not in err


def test_unknown_keys_are_logged_and_listed(caplog):
    c = from_dict({"daemon": {"flush_evry": "1s"}, "deamon": {}, "target": {"url": "http://x.example/api/v1"},
                   "backend": {"smtp_host": "mail.example"}, "receiver": {"max_body": 10}})
    assert c.unknown_keys == ("[deamon]", "[daemon] flush_evry")
    assert "ignoring unknown keys (typos?): [deamon], [daemon] flush_evry" in caplog.text


def test_receiver_max_body_must_be_a_number():
    with pytest.raises(ConfigError, match=r"\[receiver\] max_body"):
        from_dict({"receiver": {"max_body": "10MB"}})


def test_check_marks_a_config_with_unknown_keys(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ORDERBRIDGE_API_KEY", raising=False)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[connector]\ndatabase = "sqlite:///{tmp_path}/c.db"\n[daemon]\nflush_evry = "1s"\n'
                   '[target]\nurl = "http://127.0.0.1:9/api/v1"\n')
    assert main(["--config", str(cfg), "check"]) == 1
    assert "BAD config: " in capsys.readouterr().out


@pytest.mark.parametrize("hours", ["12h", 0, True])
def test_a_bad_ui_session_length_is_a_config_error(tmp_path, hours):
    from backend import create_app
    config = from_dict({"backend": {"database": f"sqlite:///{tmp_path}/b.db", "ui_session_hours": hours}})
    with pytest.raises(ConfigError, match="ui_session_hours"):
        create_app(config, test_config={"API_KEYS": ["k"], "RATE_LIMIT": 0})
