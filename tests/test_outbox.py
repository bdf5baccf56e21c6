"""The durable outbox: order, acknowledgement, crash safety."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from edge.outbox import Outbox


def test_pending_in_append_order_and_ack_removes(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    seqs = [box.append(f"id-{i}", "t", f"{i}".encode()) for i in range(5)]
    assert [m.fact_id for m in box.pending()] == [f"id-{i}" for i in range(5)]
    box.acknowledge([seqs[1], seqs[3]])
    assert [m.payload for m in box.pending()] == [b"0", b"2", b"4"]
    assert [m.payload for m in box.pending(after_seq=seqs[2])] == [b"4"]
    assert box.depth() == 3


def test_append_is_idempotent_per_fact_id(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    first = box.append("same", "t", b"a")
    assert box.append("same", "t", b"b") == first
    assert [m.payload for m in box.pending()] == [b"a"]


def test_survives_reopen(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    box.append("a", "t", b"1", retain=True)
    box.close()
    again = Outbox(tmp_path / "o.sqlite")
    [message] = again.pending()
    assert (message.fact_id, message.retain) == ("a", True)


def test_wait_for_message_wakes_on_append(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    assert box.wait_for_message(after_seq=0, timeout=0.05) is False
    box.append("a", "t", b"1")
    assert box.wait_for_message(after_seq=0, timeout=0.05) is True


def test_sigkill_loses_nothing_that_append_returned(tmp_path: Path) -> None:
    """A writer killed with SIGKILL keeps every message whose append() returned."""
    path = tmp_path / "o.sqlite"
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from edge.outbox import Outbox
        box = Outbox(Path({str(path)!r}))
        i = 0
        while True:
            box.append(f"id-{{i}}", "t", b"x")
            print(i, flush=True)
            i += 1
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert proc.stdout is not None
    last = -1
    for line in proc.stdout:
        last = int(line)
        if last >= 300:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    ids = {m.fact_id for m in Outbox(path).pending(limit=100_000)}
    assert {f"id-{i}" for i in range(last + 1)} <= ids
