"""The hall environment at the edge: the zones a camera sees.

- :mod:`.hygiene`: 环境好/环境差 of a window's public area against a clean reference;
- :mod:`.people`: the people in a zone (tiled person detection);
- :mod:`.occupancy`: the occupancy gauge and crowding per zone;
- :mod:`.flow`: people crossing an entrance line, in and out;
- :mod:`.zone_watch`: all of a camera's zones, turned into facts.
"""

from edge.environment.flow import FlowReport, LineCounter
from edge.environment.hygiene import HygieneEvent, HygieneSettings, HygieneStats, HygieneWatcher
from edge.environment.occupancy import OccupancyGauge, OccupancyReport
from edge.environment.people import ZonePeople
from edge.environment.zone_watch import ZoneWatch

__all__ = [
    "FlowReport",
    "HygieneEvent",
    "HygieneSettings",
    "HygieneStats",
    "HygieneWatcher",
    "LineCounter",
    "OccupancyGauge",
    "OccupancyReport",
    "ZonePeople",
    "ZoneWatch",
]
