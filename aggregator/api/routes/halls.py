"""Halls, their posts and their devices, with live state."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter
from sqlalchemy import select

from aggregator.api.deps import HallDep, HallsDep, StateDep
from aggregator.api.models import CallOut, DeviceOut, EdgeOut, HallCounts, HallOut, PostOut
from aggregator.cases.models import TicketCall
from aggregator.store.state import StateStore
from hallwatch.config.models import HallConfig
from hallwatch.contract import AlertKind, DeviceKind, DeviceState, PostState, utcnow

router = APIRouter(prefix="/halls", tags=["halls"])


def _hall_out(hall: HallConfig, state: StateStore) -> HallOut:
    hid = hall.hall.id
    edges = [
        EdgeOut(source=e.source, state=DeviceState(e.state), ts=e.ts)
        for e in state.edge_statuses(hid)
    ]
    posts = {p.id for p in hall.posts}
    statuses = [s for s in state.post_statuses(hid) if s.post in posts]
    offline = sum(
        1
        for d in state.device_statuses(hid)
        if d.kind == DeviceKind.CAMERA.value and d.state == DeviceState.OFFLINE.value
    )
    on = sum(1 for s in statuses if s.state == PostState.ON_POST.value)
    off = sum(1 for s in statuses if s.state == PostState.OFF_POST.value)
    return HallOut(
        id=hid,
        name=hall.hall.name,
        timezone=hall.hall.timezone,
        in_service=hall.is_in_service(utcnow()),
        edge_online=all(e.state is DeviceState.ONLINE for e in edges) if edges else None,
        edges=edges,
        counts=HallCounts(
            posts=len(hall.posts),
            on_post=on,
            off_post=off,
            unknown=len(hall.posts) - on - off,
            cameras_offline=offline,
            open_alerts=len(state.open_alerts(hid)),
        ),
    )


@router.get("", response_model=list[HallOut], summary="Halls with live summary")
def list_halls(halls: HallsDep, state: StateDep) -> list[HallOut]:
    """Every hall the caller may see: edge status, whether it serves now, post counts."""
    return [_hall_out(h, state) for h in halls.values()]


@router.get("/{hall}", response_model=HallOut, summary="One hall")
def get_hall(hall: HallDep, state: StateDep) -> HallOut:
    """One hall's live summary."""
    return _hall_out(hall, state)


@router.get("/{hall}/posts", response_model=list[PostOut], summary="A hall's posts, live")
def list_posts(hall: HallDep, state: StateDep) -> list[PostOut]:
    """The hall's configured posts, in file order, each with its live state (在岗/离岗),
    since when, and whether its camera is online."""
    hid = hall.hall.id
    statuses = {s.post: s for s in state.post_statuses(hid)}
    devices = {d.device: d for d in state.device_statuses(hid)}
    alerts = {a.post: a.id for a in state.open_alerts(hid) if a.kind == AlertKind.OFF_POST.value}
    calls = _last_calls(hall, state)
    out = []
    for post in hall.posts:
        status = statuses.get(post.id)
        device = devices.get(post.camera)
        out.append(
            PostOut(
                id=post.id,
                name=post.name,
                kind=post.kind.value,
                window=post.window,
                camera=post.camera,
                state=PostState(status.state) if status else None,
                since=status.since if status else None,
                last_report=status.last_fact_ts if status else None,
                camera_online=(device.state == DeviceState.ONLINE.value) if device else None,
                off_post_after_s=hall.off_post_after_s_for(post),
                open_alert=alerts.get(post.id),
                last_call=calls.get(post.window) if post.window is not None else None,
            )
        )
    return out


def _last_calls(hall: HallConfig, state: StateStore) -> dict[str, CallOut]:
    """The last ticket each window called since the hall's midnight."""
    tz = hall.hall.tzinfo
    midnight = datetime.now(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    with state.read_session() as session:
        rows = session.scalars(
            select(TicketCall)
            .where(TicketCall.hall == hall.hall.id, TicketCall.at >= midnight.astimezone(UTC))
            .order_by(TicketCall.at)
        ).all()
        return {
            r.window: CallOut(ticket=r.ticket_id.rpartition("-")[2], at=r.at, staff=r.staff)
            for r in rows
        }


@router.get("/{hall}/devices", response_model=list[DeviceOut], summary="A hall's devices, live")
def list_devices(hall: HallDep, state: StateDep) -> list[DeviceOut]:
    """Every camera and configured device of the hall (cameras first, in file order), each
    with its live state (``null`` until reported), since when, the reason it is offline
    and its open ``device_offline`` alert; then devices the edge reported that the config
    does not list."""
    hid = hall.hall.id
    statuses = {d.device: d for d in state.device_statuses(hid)}
    alerts = {
        a.device: a.id
        for a in state.open_alerts(hid)
        if a.kind == AlertKind.DEVICE_OFFLINE.value and a.device is not None
    }
    known: list[tuple[str, str, DeviceKind]] = [
        (c.id, c.name or c.id, DeviceKind.CAMERA) for c in hall.cameras
    ]
    known += [(d.id, d.name, d.kind) for d in hall.devices]
    configured = {dev_id for dev_id, _, _ in known}
    known += [
        (dev_id, dev_id, _kind(s.kind))
        for dev_id, s in sorted(statuses.items())
        if dev_id not in configured
    ]
    out = []
    for dev_id, name, kind in known:
        status = statuses.get(dev_id)
        out.append(
            DeviceOut(
                id=dev_id,
                name=name,
                kind=kind,
                configured=dev_id in configured,
                state=DeviceState(status.state) if status else None,
                since=status.since if status else None,
                reason=status.reason if status else "",
                last_report=status.last_fact_ts if status else None,
                open_alert=alerts.get(dev_id),
            )
        )
    return out


def _kind(value: str) -> DeviceKind:
    try:
        return DeviceKind(value)
    except ValueError:
        return DeviceKind.OTHER
