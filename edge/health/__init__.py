"""Health of the hall's devices other than cameras (设备运转): signs of life in, facts out.

- :class:`~edge.health.device_monitor.DeviceMonitor` keeps each configured device's last
  sign of life and turns silence and return into ``device`` facts;
- :class:`~edge.health.probes.HeartbeatFeed` takes MQTT heartbeats through the feed runner;
- :class:`~edge.health.probes.DeviceProber` polls the HTTP and TCP probes on its own thread.
"""

from edge.health.device_monitor import DeviceMonitor, describe_probe
from edge.health.probes import DeviceProber, HeartbeatFeed, heartbeat_feeds, http_alive, tcp_alive

__all__ = [
    "DeviceMonitor",
    "DeviceProber",
    "HeartbeatFeed",
    "describe_probe",
    "heartbeat_feeds",
    "http_alive",
    "tcp_alive",
]
