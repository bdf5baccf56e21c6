"""Evidence snapshots (证据截图) of alerts from video, kept for a retention period.

A fact from video may carry an :class:`~hallwatch.contract.Evidence`: a small JPEG of the
region the fact is about, faces of the public blurred at the edge. The ingestor stores it
here (one row per fact, with the fact's id and the post or zone), and the alert the fact
raises points at it (``Alert.evidence_id``). The API serves the JPEG to authorised roles
only (:mod:`aggregator.api.routes.environment`).

Snapshots are personal data, kept only for the alert they document. The service's
housekeeping (:func:`purge_evidence`, hourly) deletes:

- a snapshot **no alert uses** once it is older than ``evidence_unused_grace_h`` (default
  24): every presence change to ``off_post`` carries one, most absences end before the
  threshold and never alert, and a 环境差 episode cleared before opening raises nothing —
  those images have no purpose. "Used" means an alert points at it
  (``Alert.evidence_id``) or an episode still running may still link it: the current
  absence of a post (``PostStatus.evidence_id``) or 环境差 episode of a zone
  (``ZoneStatus.hygiene_evidence_id``, linked when service time begins);
- every snapshot older than ``evidence_retention_days`` (default 180).

Ages count from when the aggregator stored the row (its own clock, not the edge's). An
alert keeps its ``evidence_id`` after the purge, so the API can tell "deleted after the
retention" from "never had one" (an unused snapshot has no alert to ask about).

The table is on :data:`aggregator.store.state.Base` (``create_all`` and Alembic see it
once this module is imported, as the ingestor and the API do).

Example:
    >>> import base64
    >>> from datetime import UTC, datetime, timedelta
    >>> from aggregator.store.state import StateStore
    >>> from hallwatch.contract import Evidence
    >>> store = StateStore("sqlite://"); store.create_all()
    >>> jpeg = b"\\xff\\xd8\\xff\\xd9"
    >>> ev = Evidence(camera="c1", taken=datetime(2026, 11, 2, tzinfo=UTC), region=[0, 0, 4, 4],
    ...               width=4, height=4, faces_blurred=0, jpeg=base64.b64encode(jpeg).decode())
    >>> with store.session() as s:
    ...     sid = store_evidence(s, "h1", ev, fact_id="F1", zone="w1-public")
    >>> with store.read_session() as s:
    ...     get_evidence(s, sid).jpeg == jpeg
    True
    >>> with store.session() as s:
    ...     purge_evidence(s, datetime.now(UTC) + timedelta(seconds=1))
    1
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import ColumnElement, Index, Integer, LargeBinary, String, and_, delete, exists
from sqlalchemy.orm import Mapped, Session, mapped_column

from aggregator.store.state import Alert, Base, PostStatus, ZoneStatus
from hallwatch.contract import Evidence, new_id, utcnow

logger = logging.getLogger(__name__)


class EvidenceSnapshot(Base):
    """One stored snapshot: the JPEG and what it shows."""

    __tablename__ = "evidence"
    __table_args__ = (
        Index("evidence_by_created", "created"),
        Index("evidence_by_fact", "fact_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    hall: Mapped[str] = mapped_column(String(64))
    camera: Mapped[str] = mapped_column(String(64))
    taken: Mapped[datetime]
    region: Mapped[str] = mapped_column(String(64))
    """``x1,y1,x2,y2`` in the camera's configured-image pixels."""
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    faces_blurred: Mapped[int] = mapped_column(Integer)
    jpeg: Mapped[bytes] = mapped_column(LargeBinary)
    fact_id: Mapped[str] = mapped_column(String(40))
    post: Mapped[str | None] = mapped_column(String(64), default=None)
    zone: Mapped[str | None] = mapped_column(String(64), default=None)
    created: Mapped[datetime]

    @property
    def region_box(self) -> list[int]:
        """``region`` as ``[x1, y1, x2, y2]``."""
        return [int(v) for v in self.region.split(",")]


def store_evidence(
    session: Session,
    hall: str,
    ev: Evidence,
    *,
    fact_id: str,
    post: str | None = None,
    zone: str | None = None,
    now: datetime | None = None,
) -> str:
    """Keep one snapshot (inside the fact's transaction).

    Args:
        session: The fact's session.
        hall: Hall id.
        ev: The snapshot from the fact's body.
        fact_id: Id of the fact that carried it.
        post: The post it shows (presence facts).
        zone: The zone it shows (hygiene and occupancy facts).
        now: Storage time (the retention counts from it); default: now.

    Returns:
        The snapshot's id (for ``Alert.evidence_id``).
    """
    row = EvidenceSnapshot(
        id=new_id(),
        hall=hall,
        camera=ev.camera,
        taken=ev.taken,
        region=",".join(str(int(v)) for v in ev.region),
        width=ev.width,
        height=ev.height,
        faces_blurred=ev.faces_blurred,
        jpeg=ev.image_bytes(),
        fact_id=fact_id,
        post=post,
        zone=zone,
        created=now or utcnow(),
    )
    session.add(row)
    logger.debug(
        "snapshot %s stored: hall %s %s %s, %d bytes, fact %s",
        row.id,
        hall,
        "post" if post else "zone",
        post or zone,
        len(row.jpeg),
        fact_id,
    )
    return row.id


def get_evidence(session: Session, evidence_id: str) -> EvidenceSnapshot | None:
    """One snapshot by id (None: never stored, or purged)."""
    return session.get(EvidenceSnapshot, evidence_id)


def purge_evidence(
    session: Session, older_than: datetime, *, unused_older_than: datetime | None = None
) -> int:
    """Delete the snapshots past the retention, and the unused ones past the grace.

    Args:
        session: A write session.
        older_than: Retention cut-off (aware): every row with ``created < older_than`` goes.
        unused_older_than: Grace cut-off (aware) for snapshots no alert uses and no running
            absence or 环境差 episode may still link (see the module's docstring): those
            with ``created < unused_older_than`` go too. None: the retention alone.

    Returns:
        How many were deleted.
    """
    expired = _delete(session, EvidenceSnapshot.created < older_than)
    unused = 0
    if unused_older_than is not None:
        unused = _delete(session, and_(EvidenceSnapshot.created < unused_older_than, _unused()))
    logger.debug("purged %d snapshot(s) past the retention, %d unused", expired, unused)
    return expired + unused


def _unused() -> ColumnElement[bool]:
    """No alert uses the snapshot, and no running absence or episode holds it."""
    snapshot = EvidenceSnapshot.id
    return and_(
        ~exists().where(Alert.evidence_id == snapshot),
        ~exists().where(PostStatus.evidence_id == snapshot),
        ~exists().where(ZoneStatus.hygiene_evidence_id == snapshot),
    )


def _delete(session: Session, condition: ColumnElement[bool]) -> int:
    result = session.execute(
        delete(EvidenceSnapshot).where(condition).execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def evidence_path(hall: str, alert_id: str) -> str:
    """API path of an alert's snapshot.

    >>> evidence_path("demo-hall", "01JBQ8Z2J6V6K3M0S9A1B2C3D4")
    '/api/v1/halls/demo-hall/alerts/01JBQ8Z2J6V6K3M0S9A1B2C3D4/evidence'
    """
    return f"/api/v1/halls/{hall}/alerts/{alert_id}/evidence"
