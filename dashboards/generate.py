"""Write HallWatch's Grafana dashboards (the JSON files next to this script).

The JSON files are generated: edit the panel lists (``hall_views.py``, ``health_view.py``,
``influx_view.py``) and run this script; ``--check`` only tells whether the files are up
to date (the tests run it).

Example:
    python dashboards/generate.py          # rewrite the JSON files
    python dashboards/generate.py --check  # exit 1 if one differs
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from grafana_json import Json
from hall_views import hall, overview
from health_view import pipeline
from influx_view import hall_influx

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent

DASHBOARDS: dict[str, Callable[[], Json]] = {
    "hallwatch-overview.json": overview,
    "hallwatch-hall.json": hall,
    "hallwatch-pipeline.json": pipeline,
    "influxdb/hallwatch-hall-influxdb.json": hall_influx,
}
"""File (relative to this folder) → the function that builds it."""


def render(build: Callable[[], Json]) -> str:
    """A dashboard as the text of its file (2-space JSON, UTF-8 characters kept)."""
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def stale_files(folder: Path = HERE) -> list[str]:
    """The dashboard files that are missing or differ from what the panel lists build."""
    return [
        name
        for name, build in DASHBOARDS.items()
        if not (folder / name).is_file()
        or (folder / name).read_text(encoding="utf-8") != render(build)
    ]


def write_all(folder: Path = HERE) -> list[Path]:
    """Write every dashboard file; returns their paths."""
    written = []
    for name, build in DASHBOARDS.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(build), encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """Command line: write the files, or with ``--check`` report the stale ones."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if stale")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.check:
        stale = stale_files()
        for name in stale:
            logger.error("%s is out of date: run python dashboards/generate.py", name)
        return 1 if stale else 0
    for path in write_all():
        logger.info("wrote %s", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
