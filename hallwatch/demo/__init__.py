"""The self-contained demo: a generated service-hall video with real people composited in.

See :mod:`hallwatch.demo.scene` for the script, the renderer, the video writer and the
off-post alerts a correct pipeline should raise on it.
"""

from hallwatch.demo.scene import (
    Absence,
    DemoPost,
    DemoScript,
    default_script,
    expected_off_post,
    render_frame,
    write_demo_video,
)

__all__ = [
    "Absence",
    "DemoPost",
    "DemoScript",
    "default_script",
    "expected_off_post",
    "render_frame",
    "write_demo_video",
]
