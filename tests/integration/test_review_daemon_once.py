"""`orderbridge daemon --once` names every shop it could not poll in its one summary line (cron sees only that)."""
from __future__ import annotations

from daemon.cli import main
from tests.fakes.fake_woocommerce import KEY, FakeWooCommerce


def test_a_failed_poll_is_named_in_the_summary(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OB_REVIEW_KEY", "k")
    monkeypatch.setenv("OB_REVIEW_CK", KEY)
    monkeypatch.setenv("OB_REVIEW_CS", "cs_wrong")
    with FakeWooCommerce([]) as woo:
        cfg = tmp_path / "orderbridge.toml"
        cfg.write_text(f'[connector]\ndatabase = "sqlite:///{tmp_path}/c.db"\n'
                       '[target]\nurl = "http://127.0.0.1:9/api/v1"\napi_key_env = "OB_REVIEW_KEY"\n'
                       f'[[shops]]\nname = "w"\nplatform = "woocommerce"\nurl = "{woo.url}"\n'
                       'consumer_key_env = "OB_REVIEW_CK"\nconsumer_secret_env = "OB_REVIEW_CS"\n')
        rc = main(["--config", str(cfg), "daemon", "--once"])
    out = capsys.readouterr().out
    assert rc == 0                                   # nothing was due: the target was not needed
    assert "polled 0 shops; poll failed for w (" in out and "refused the REST API key" in out
    assert "cs_wrong" not in out


def one_order_for_a_target_that_is_down(tmp_path, monkeypatch, url: str):
    """A config whose target refuses connections (port 9), one order enqueued, one `daemon --once` run
    (exit 1: the order waits); returns the config's path."""
    import json

    from tests.delivery_helpers import wire_order
    monkeypatch.setenv("OB_REVIEW_KEY", "k")
    cfg = tmp_path / "orderbridge.toml"
    cfg.write_text(f'[connector]\ndatabase = "sqlite:///{tmp_path}/c.db"\n'
                   f'[target]\nurl = "{url}"\napi_key_env = "OB_REVIEW_KEY"\n')
    (tmp_path / "o.jsonl").write_text(json.dumps(wire_order(1)))
    assert main(["--config", str(cfg), "enqueue", str(tmp_path / "o.jsonl")]) == 0
    assert main(["--config", str(cfg), "daemon", "--once"]) == 1
    return cfg


def test_once_keeps_failing_while_orders_wait_for_a_target_that_is_down(tmp_path, monkeypatch, capsys):
    """DESIGN section 4: non-zero until everything pending is delivered (or failed for a data reason).
    The second run finds nothing due (the order waits for its retry) and used to exit 0."""
    cfg = one_order_for_a_target_that_is_down(tmp_path, monkeypatch, "http://127.0.0.1:9/api/v1")
    capsys.readouterr()
    assert main(["--config", str(cfg), "daemon", "--once"]) == 1
    out = capsys.readouterr().out
    assert "not delivered yet: 1 pending wait for the target" in out and "could not be reached" in out


def test_a_database_that_cannot_be_used_is_one_line(tmp_path, capsys):
    (tmp_path / "c.db").write_bytes(b"this is not a database")
    for url, reason in ((f"sqlite:///{tmp_path}/c.db", "file is not a database"),
                        ("postgresql://u:secret-pw@127.0.0.1:1/x", "Connection refused"),
                        ("sqlite:////proc/no-such/c.db", "cannot create the folder of the database")):
        cfg = tmp_path / "orderbridge.toml"
        cfg.write_text(f'[connector]\ndatabase = "{url}"\n')
        assert main(["--config", str(cfg), "outbox", "status"]) == 2
        err = capsys.readouterr().err
        assert reason in err and "Traceback" not in err and "secret-pw" not in err and len(err.splitlines()) == 1


def test_durations_and_sizes_of_zero_are_refused_naming_the_key(tmp_path, capsys):
    for section, line, key in (("target", 'timeout = "0s"', "[target] timeout"), ("daemon", 'lease = "0s"', "[daemon] lease"),
                               ("daemon", 'flush_every = "0s"', "[daemon] flush_every"),
                               ("receiver", "max_body = 0", "[receiver] max_body")):
        cfg = tmp_path / "orderbridge.toml"
        cfg.write_text(f'[connector]\ndatabase = "sqlite:///{tmp_path}/c.db"\n[{section}]\n{line}\n')
        assert main(["--config", str(cfg), "check"]) == 2
        assert key in capsys.readouterr().err


def test_a_target_that_cannot_be_reached_is_named(tmp_path, monkeypatch, capsys):
    """The outbox's last error and check say which URL could not be reached (a copied config may point at
    another port than the one `up` runs on), never the password of a URL that carries one."""
    cfg = one_order_for_a_target_that_is_down(tmp_path, monkeypatch, "http://u:pw-secret@127.0.0.1:9/api/v1")
    assert main(["--config", str(cfg), "outbox", "status"]) == 0
    out = capsys.readouterr().out
    assert "the target http://127.0.0.1:9/api/v1 could not be reached" in out and "pw-secret" not in out
    main(["--config", str(cfg), "check"])
    out = capsys.readouterr().out
    assert "(ConnectionError); is `orderbridge up` (or `orderbridge backend`) running there?" in out
    assert "another --port, set [target] url to match" in out
