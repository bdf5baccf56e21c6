"""Presence per post: 在岗 / 离岗 with hysteresis, timed by frame timestamps.

The tracker turns a stream of per-look observations ("a person is / is not at the post at
pts t") into facts: one on every change of state, plus a periodic summary, never one per
frame. A post turns absent only after nobody has been seen for the grace period, and the
absence is dated from the last time somebody was seen.

Example:
    >>> t = PresenceTracker("w1", grace_s=10, summary_interval_s=60)
    >>> [e.state for e in t.observe(0.0, True)]
    [<PostState.ON_POST: 'on_post'>]
    >>> t.observe(5.0, False), t.observe(8.0, False)
    ([], [])
    >>> e = t.observe(11.0, False)[0]; (e.state.value, e.since_pts)
    ('off_post', 0.0)
"""

from __future__ import annotations

from dataclasses import dataclass

from hallwatch.contract import PostState


@dataclass(frozen=True, slots=True)
class PresenceEvent:
    """A change of a post's state, or a periodic summary of it."""

    post: str
    state: PostState
    since_pts: float
    """Stream time the post entered ``state``."""
    pts: float
    """Stream time of the look that produced this event."""
    summary: bool
    score: float | None


class PresenceTracker:
    """Hysteresis state machine for one post.

    Args:
        post: Post id.
        grace_s: Present → absent only after nobody was seen for this long.
        summary_interval_s: A summary event is emitted at least this often.
        arrive_s: Absent → present only after somebody was seen continuously this long
            (0: one look suffices).
    """

    def __init__(
        self, post: str, *, grace_s: float, summary_interval_s: float, arrive_s: float = 0.0
    ) -> None:
        self.post = post
        self.grace_s = grace_s
        self.arrive_s = arrive_s
        self.summary_interval_s = summary_interval_s
        self.reset()

    def reset(self) -> None:
        """Back to "unknown" (after a camera outage: what happened meanwhile is unseen)."""
        self.state: PostState | None = None
        self.since_pts: float | None = None
        self._first_pts: float | None = None
        self._last_seen: float | None = None
        self._seen_run_start: float | None = None
        self._last_emit_pts: float | None = None
        self._score: float | None = None

    def observe(
        self,
        pts: float,
        person: bool,
        *,
        score: float | None = None,
        last_seen_pts: float | None = None,
    ) -> list[PresenceEvent]:
        """Feed one look at the post.

        Args:
            pts: Stream time of the look; must not go backwards.
            person: Whether an accepted person was at the post.
            score: The best accepted person score, if any.
            last_seen_pts: For ``person=False``: override of when somebody was last really
                at the post (used when an earlier detection is found to be a static false
                positive, so the absence is dated from when the scene last changed).
        """
        if self._first_pts is None:
            self._first_pts = pts
        if person:
            self._score = score
            self._last_seen = pts
            if self._seen_run_start is None:
                self._seen_run_start = pts
            if self.state is not PostState.ON_POST and pts - self._seen_run_start >= self.arrive_s:
                return [self._change(PostState.ON_POST, self._seen_run_start, pts)]
        else:
            self._score = None
            self._seen_run_start = None
            if last_seen_pts is not None:
                self._last_seen = last_seen_pts
            absent_since = self._last_seen if self._last_seen is not None else self._first_pts
            if self.state is not PostState.OFF_POST and pts - absent_since >= self.grace_s:
                return [self._change(PostState.OFF_POST, absent_since, pts)]
        return self._maybe_summary(pts)

    def _change(self, state: PostState, since: float, pts: float) -> PresenceEvent:
        self.state, self.since_pts, self._last_emit_pts = state, since, pts
        return PresenceEvent(self.post, state, since, pts, False, self._score)

    def _maybe_summary(self, pts: float) -> list[PresenceEvent]:
        if self.state is None or self.since_pts is None or self._last_emit_pts is None:
            return []
        if pts - self._last_emit_pts < self.summary_interval_s:
            return []
        self._last_emit_pts = pts
        return [PresenceEvent(self.post, self.state, self.since_pts, pts, True, self._score)]
