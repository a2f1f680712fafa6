"""`orderbridge outbox failed --limit N` says how many failed in all, not only how many it listed."""
from sqlalchemy.orm import Session

from connector.outbox import enqueue_failed
from connector.store import init_db, make_engine
from daemon.cli import main


def test_limit_reports_the_total(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[connector]\ndatabase = "sqlite:///{tmp_path}/c.db"\n')
    engine = make_engine(f"sqlite:///{tmp_path}/c.db")
    init_db(engine)
    with Session(engine) as s:
        for i in range(5):
            enqueue_failed(s, "main", f"O{i}", {"externalOrderId": f"O{i}"}, "no contact identifier")
        s.commit()
    engine.dispose()
    assert main(["--config", str(cfg), "outbox", "failed", "--limit", "2"]) == 0
    out, err = capsys.readouterr()
    assert len(out.strip().splitlines()) == 2
    assert "5 failed (2 listed; raise --limit to see more)" in err


def test_replay_names_ids_that_are_not_failed_deliveries(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[connector]\ndatabase = "sqlite:///{tmp_path}/c.db"\n')
    assert main(["--config", str(cfg), "outbox", "replay", "999"]) == 1
    out, err = capsys.readouterr()
    assert "replayed 0" in out and "not failed deliveries (or unknown): 999" in err
