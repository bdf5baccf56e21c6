"""Frame sources: RTSP/file readers (PyAV), file replay, and the per-camera watchdog."""

from edge.sources.av_source import LatestFrameReader, ReaderStats, open_source
from edge.sources.codec import scrub_url
from edge.sources.file_source import iter_file_frames
from edge.sources.frame import Frame
from edge.sources.watchdog import CameraWatchdog, StatusCallback

__all__ = [
    "CameraWatchdog",
    "Frame",
    "LatestFrameReader",
    "ReaderStats",
    "StatusCallback",
    "iter_file_frames",
    "open_source",
    "scrub_url",
]
