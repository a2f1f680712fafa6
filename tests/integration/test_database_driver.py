"""A PostgreSQL URL without the `postgres` extra installed says what to install, in one line, not a traceback."""
import builtins

from daemon.cli import main


def test_a_postgresql_url_without_psycopg_names_the_extra(tmp_path, monkeypatch, capsys):
    real_import = builtins.__import__

    def no_psycopg(name, *args, **kwargs):
        if name == "psycopg" or name.startswith("psycopg."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_psycopg)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pg.toml").write_text('[connector]\ndatabase = "postgresql://user@127.0.0.1:5432/orderbridge"\n')
    assert main(["--config", "pg.toml", "outbox", "status"]) == 2
    err = capsys.readouterr().err
    assert "needs the postgres extra" in err and "pip install -e '.[postgres]'" in err
    assert "Traceback" not in err
