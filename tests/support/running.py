"""Helpers for tests that run the real services: wait for a condition, start an aggregator."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from aggregator.service import AggregatorService
from aggregator.settings import AggregatorSettings
from hallwatch.config import HallConfig


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``check`` until it is true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def start_aggregator(folder: Path, hall: HallConfig, mqtt_port: int) -> AggregatorService:
    """An aggregator for one hall on SQLite in ``folder``, connected (MQTT 5) to the broker."""
    settings = AggregatorSettings(
        database_url=f"sqlite:///{folder / 'state.sqlite'}",
        mqtt_port=mqtt_port,
        mqtt_client_id=f"agg-{hall.hall.id}",
        http_port=0,
        # the tests replay days of their own (2026-11-02): accepted for years, not 90 days
        ledger_retention_days=3650,
    )
    service = AggregatorService(settings, {hall.hall.id: hall})
    service.start()
    assert service.wait_mqtt_connected(10), "the aggregator could not connect to the broker"
    return service
