"""Live updates as server-sent events.

Events: ``presence`` (a post changed state), ``device`` (a camera went online/offline),
``edge`` (an edge worker went online/offline), ``alert`` (opened or resolved). Each
``data`` line is JSON with at least ``hall``. A comment line (``: heartbeat``) is sent
every ``sse_heartbeat_s`` seconds so proxies keep the connection open; the stream opens
with ``: connected`` once the subscription is in place. At each heartbeat the caller's
token or session is checked again: the stream ends once it is revoked or expired, or the
user disabled.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import StreamingResponse

from aggregator.api.deps import BusDep, HallsDep, ServicesDep, credentials

router = APIRouter(tags=["live"])


@router.get(
    "/live",
    summary="Live events (SSE)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Event stream."}},
)
async def live(
    request: Request,
    bus: BusDep,
    halls: HallsDep,
    services: ServicesDep,
    hall: Annotated[str | None, Query(description="Only this hall's events.")] = None,
) -> StreamingResponse:
    """Server-sent events: presence changes, device and edge changes, alerts."""
    if hall is not None and hall not in halls:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown hall {hall!r}")
    visible = set(halls)
    heartbeat = services.sse_heartbeat_s
    given, users = credentials(request), services.users

    def still_signed_in() -> bool:
        if given is None or users is None:
            return True  # a caller stood in by the app (tests), not a token
        return users.caller(given.secret, kinds=given.kinds) is not None

    subscription = bus.subscribe()

    async def stream() -> AsyncIterator[str]:
        try:
            yield "retry: 3000\n: connected\n\n"
            while True:
                event = await subscription.get(timeout=heartbeat)
                if event is None:
                    if subscription.closed or not await asyncio.to_thread(still_signed_in):
                        return
                    yield ": heartbeat\n\n"
                    continue
                if event.hall not in visible or (hall is not None and event.hall != hall):
                    continue
                yield event.to_sse()
        finally:
            subscription.close()

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
