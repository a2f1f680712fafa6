"""Run beside `orderbridge up`, a command without a key points at the file where `up` keeps it (never its content)."""
from daemon.cli import main


def test_push_and_check_point_at_var_api_key(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ORDERBRIDGE_API_KEY", raising=False)
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "api_key").write_text("secret-key-123\n")
    assert main(["push"]) == 2
    err = capsys.readouterr().err
    assert 'export ORDERBRIDGE_API_KEY="$(cat var/api_key)"' in err and "secret-key-123" not in err
    main(["check"])
    out = capsys.readouterr().out
    assert "BAD credentials: no API key" in out and "var/api_key" in out and "secret-key-123" not in out
