"""The backend's background loops: started beside the app, stopped by one event, errors kept to the log."""
from __future__ import annotations

import threading

from backend import create_app, worker


def test_background_loops_run_until_stopped_and_a_failing_loop_does_not_stop_the_others(tmp_path):
    app = create_app(test_config={"DATABASE_URL": f"sqlite:///{tmp_path}/b.db", "API_KEYS": ["k"]})
    rounds, ran = [], threading.Event()

    def counting(app_, stop):
        while not stop.is_set():
            rounds.append(app_.name)
            ran.set()
            stop.wait(0.01)

    def failing(app_, stop):
        raise RuntimeError("broken loop")

    saved = list(worker.BACKGROUND)
    worker.BACKGROUND[:] = [failing, counting]
    try:
        stop = worker.start_background(app)
        assert ran.wait(5)
        worker.stop_background(app, stop, timeout=5)
    finally:
        worker.BACKGROUND[:] = saved
    assert rounds and all(not t.is_alive() for t in app.extensions["orderbridge.background"])
    app.extensions["orderbridge.engine"].dispose()
