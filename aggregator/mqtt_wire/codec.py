"""MQTT 3.1.1 and 5 packets a subscriber sends and receives, as bytes.

Only what :class:`~aggregator.mqtt_wire.subscriber.FactSubscriber` needs: CONNECT,
SUBSCRIBE, PUBACK, PINGREQ and DISCONNECT out; CONNACK, SUBACK, PUBLISH, PINGRESP and
DISCONNECT in. :class:`PacketReader` splits a received byte stream into packets, many per
call: a backlog arrives as a few large reads, not one read per message.

Example:
    >>> reader = PacketReader(v5=False)
    >>> wire = publish_packet("hallwatch/v1/h1/facts/presence", b"{}", mid=7)
    >>> packets = reader.feed(wire[:5]) + reader.feed(wire[5:])
    >>> packets
    [Publish(topic='hallwatch/v1/h1/facts/presence', payload=b'{}', mid=7, qos=1, retain=False)]
    >>> pubacks([7, 258, 65535])
    b'@\\x02\\x00\\x07@\\x02\\x01\\x02@\\x02\\xff\\xff'
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Sequence
from dataclasses import dataclass

PROTOCOL_311 = 4
PROTOCOL_5 = 5
MAX_PACKET_BYTES = 64 * 1024 * 1024
"""Largest packet accepted (a fact with a snapshot is tens of kilobytes)."""

_CONNECT, _CONNACK, _PUBLISH, _PUBACK = 0x10, 0x20, 0x30, 0x40
_SUBSCRIBE, _SUBACK, _PINGREQ, _PINGRESP, _DISCONNECT = 0x82, 0x90, 0xC0, 0xD0, 0xE0
_PROP_SESSION_EXPIRY, _PROP_RECEIVE_MAXIMUM, _PROP_MAXIMUM_PACKET = 0x11, 0x21, 0x27
_PROP_SERVER_KEEPALIVE = 0x13
_PROPERTY_SIZES = {
    # fixed-size properties: bytes of value
    0x01: 1, 0x02: 4, 0x0B: -1, 0x11: 4, 0x13: 2, 0x17: 1, 0x18: 4, 0x19: 1, 0x21: 2,
    0x22: 2, 0x23: 2, 0x24: 1, 0x25: 1, 0x27: 4, 0x28: 1, 0x29: 1, 0x2A: 1,
    # length-prefixed strings and binary data
    0x03: -2, 0x08: -2, 0x09: -2, 0x12: -2, 0x15: -2, 0x16: -2, 0x1A: -2, 0x1C: -2,
    0x1F: -2,
    # a string pair
    0x26: -3,
}  # fmt: skip
"""MQTT 5 property ids: value size, -1 a variable byte integer, -2 a 2-byte length and
that many bytes, -3 two of those."""

PINGREQ = bytes((_PINGREQ, 0))


class ProtocolError(Exception):
    """The broker sent something this client cannot read (the connection is dropped)."""


@dataclass(slots=True)
class Publish:
    """A PUBLISH received: topic, payload, packet id (0 at QoS 0), QoS, retain flag.

    Not frozen, read-only by convention: a frozen dataclass's ``__init__`` sets each field
    through ``object.__setattr__`` (~1.3 µs more), and one is made per fact.
    """

    topic: str
    payload: bytes
    mid: int
    qos: int
    retain: bool


@dataclass(frozen=True, slots=True)
class ConnAck:
    """The broker's answer to CONNECT: session present, return/reason code (0: accepted),
    and (MQTT 5) the keepalive the broker imposes (None: the client's own stands; 0: no
    keepalive)."""

    session_present: bool
    code: int
    server_keepalive_s: int | None = None


@dataclass(frozen=True, slots=True)
class SubAck:
    """The broker's answer to SUBSCRIBE: granted QoS (or failure code ≥ 0x80) per filter."""

    mid: int
    codes: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class PingResp:
    """The broker's answer to PINGREQ."""


@dataclass(frozen=True, slots=True)
class Disconnect:
    """The broker closes the connection (MQTT 5), with its reason code."""

    code: int


Packet = Publish | ConnAck | SubAck | PingResp | Disconnect


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | 0x80 if n else byte)
        if not n:
            return bytes(out)


def _text(value: str) -> bytes:
    raw = value.encode()
    if len(raw) > 0xFFFF:
        raise ValueError("MQTT strings are at most 65,535 bytes")
    return struct.pack("!H", len(raw)) + raw


def _packet(first: int, body: bytes) -> bytes:
    return bytes((first,)) + _varint(len(body)) + body


def connect_packet(
    client_id: str,
    *,
    protocol: int,
    keepalive_s: int,
    clean: bool,
    username: str | None = None,
    password: str | None = None,
    session_expiry_s: int = 0,
    receive_maximum: int = 0,
    max_packet: int = 0,
) -> bytes:
    """CONNECT. ``clean`` is 3.1.1's clean session / 5's clean start; ``session_expiry_s``,
    ``receive_maximum`` and ``max_packet`` (0: not sent) are MQTT 5 properties."""
    flags = 0x02 if clean else 0
    payload = _text(client_id)
    if username is not None:
        flags |= 0x80
        payload += _text(username)
        if password is not None:
            flags |= 0x40
            payload += _text(password)
    body = _text("MQTT") + bytes((protocol, flags)) + struct.pack("!H", keepalive_s)
    if protocol == PROTOCOL_5:
        props = b""
        if session_expiry_s:
            props += bytes((_PROP_SESSION_EXPIRY,)) + struct.pack("!I", session_expiry_s)
        if receive_maximum:
            props += bytes((_PROP_RECEIVE_MAXIMUM,)) + struct.pack("!H", receive_maximum)
        if max_packet:
            props += bytes((_PROP_MAXIMUM_PACKET,)) + struct.pack("!I", max_packet)
        body += _varint(len(props)) + props
    return _packet(_CONNECT, body + payload)


def subscribe_packet(mid: int, filters: list[tuple[str, int]], *, protocol: int) -> bytes:
    """SUBSCRIBE ``filters`` (topic filter, maximum QoS) as packet ``mid``."""
    body = struct.pack("!H", mid)
    if protocol == PROTOCOL_5:
        body += b"\x00"  # no properties
    for topic, qos in filters:
        body += _text(topic) + bytes((qos,))
    return _packet(_SUBSCRIBE, body)


def pubacks(mids: Sequence[int]) -> bytes:
    """The PUBACKs of packets ``mids`` (success; the same four bytes each in 3.1.1 and 5),
    back to back, built by C code: a batch acknowledges thousands (a Python call per
    packet was ~0.5 µs a message).

    Raises:
        OverflowError: A packet id is not 0-65535.
    """
    ids = array("H", mids)
    if sys.byteorder == "little":
        ids.byteswap()  # network order
    big_endian = ids.tobytes()
    out = bytearray(bytes((_PUBACK, 2, 0, 0)) * len(ids))
    out[2::4] = big_endian[0::2]
    out[3::4] = big_endian[1::2]
    return bytes(out)


def disconnect_packet(*, protocol: int) -> bytes:
    """DISCONNECT (MQTT 5: normal disconnection, the session kept as agreed)."""
    return bytes((_DISCONNECT, 1, 0)) if protocol == PROTOCOL_5 else bytes((_DISCONNECT, 0))


def publish_packet(topic: str, payload: bytes, *, mid: int = 0, retain: bool = False) -> bytes:
    """PUBLISH in MQTT 3.1.1 (QoS 1 when ``mid``, else 0): for tests and examples."""
    first = _PUBLISH | (0x02 if mid else 0) | (0x01 if retain else 0)
    body = _text(topic) + (struct.pack("!H", mid) if mid else b"") + payload
    return _packet(first, body)


class PacketReader:
    """Splits the bytes a broker sends into packets.

    Args:
        v5: MQTT 5 (PUBLISH carries properties, which are skipped).
        max_packet: Largest packet accepted.
    """

    def __init__(self, *, v5: bool, max_packet: int = MAX_PACKET_BYTES) -> None:
        self.v5 = v5
        self.max_packet = max_packet
        self._buf = b""

    def feed(self, data: bytes) -> list[Packet]:
        """The packets completed by ``data`` (a partial packet waits for the next call).

        Raises:
            ProtocolError: A malformed or unexpected packet, or one over ``max_packet``.
        """
        buf = self._buf + data if self._buf else data
        out: list[Packet] = []
        pos, end_of_data = 0, len(buf)
        while end_of_data - pos >= 2:
            first = buf[pos]
            i, length, shift = pos + 1, 0, 0
            while True:  # remaining length: 1–4 bytes, 7 bits each
                if i >= end_of_data:
                    length = -1
                    break
                byte = buf[i]
                i += 1
                length |= (byte & 0x7F) << shift
                if not byte & 0x80:
                    break
                shift += 7
                if shift > 21:
                    raise ProtocolError("remaining length longer than 4 bytes")
            if length < 0:
                break
            if length > self.max_packet:
                raise ProtocolError(f"packet of {length} bytes is over {self.max_packet}")
            end = i + length
            if end > end_of_data:
                break
            if first & 0xF0 == _PUBLISH:
                out.append(self._publish(first, buf, i, end))
            else:
                out.append(self._control(first, buf[i:end]))
            pos = end
        self._buf = buf[pos:]
        return out

    def _publish(self, first: int, buf: bytes, i: int, end: int) -> Publish:
        qos = (first >> 1) & 0x03
        if qos > 1:
            raise ProtocolError(f"PUBLISH at QoS {qos}: subscribed at QoS 1 at most")
        if i + 2 > end:
            raise ProtocolError("PUBLISH shorter than its topic length")
        j = i + 2 + ((buf[i] << 8) | buf[i + 1])
        if j > end:
            raise ProtocolError("PUBLISH shorter than its topic")
        try:
            topic = buf[i + 2 : j].decode()
        except UnicodeDecodeError as exc:
            raise ProtocolError("PUBLISH topic is not UTF-8") from exc
        mid = 0
        if qos:
            if j + 2 > end:
                raise ProtocolError("PUBLISH shorter than its packet id")
            mid = (buf[j] << 8) | buf[j + 1]
            if not mid:
                raise ProtocolError("PUBLISH at QoS 1 with packet id 0")
            j += 2
        if self.v5:
            j = _skip_properties(buf, j, end)
            if j > end:
                raise ProtocolError("PUBLISH shorter than its properties")
        return Publish(topic, buf[j:end], mid, qos, bool(first & 0x01))

    def _control(self, first: int, body: bytes) -> Packet:
        kind = first & 0xF0
        if kind == _CONNACK and len(body) >= 2:
            keepalive = None
            if self.v5 and len(body) > 2:
                try:
                    keepalive = _server_keepalive(body, 2)
                except IndexError as exc:
                    raise ProtocolError("CONNACK properties cut short") from exc
            return ConnAck(bool(body[0] & 0x01), body[1], keepalive)
        if first == _SUBACK and len(body) >= 2:
            start = _skip_properties(body, 2, len(body)) if self.v5 else 2
            return SubAck((body[0] << 8) | body[1], tuple(body[start:]))
        if kind == _PINGRESP:
            return PingResp()
        if kind == _DISCONNECT:
            return Disconnect(body[0] if body else 0)
        raise ProtocolError(f"unexpected packet type 0x{first:02x} ({len(body)} bytes)")


def _server_keepalive(body: bytes, j: int) -> int | None:
    """The Server Keep Alive property of a CONNACK's property block at ``j`` (None: none).

    Raises:
        IndexError: A property runs past the packet.
    """
    end = _skip_properties(body, j, len(body))
    if end > len(body):
        raise ProtocolError("CONNACK shorter than its properties")
    while body[j] & 0x80:  # past the block's length
        j += 1
    j += 1
    while j < end:
        prop = body[j]
        size = _PROPERTY_SIZES.get(prop)
        if size is None:
            raise ProtocolError(f"unknown MQTT 5 property 0x{prop:02x}")
        j += 1
        if prop == _PROP_SERVER_KEEPALIVE:
            if j + 2 > end:
                raise IndexError("Server Keep Alive cut short")
            return int((body[j] << 8) | body[j + 1])
        if size > 0:
            j += size
        elif size == -1:
            while body[j] & 0x80:
                j += 1
            j += 1
        else:
            for _ in range(-size - 1):
                j += 2 + ((body[j] << 8) | body[j + 1])
        if j > end:
            raise IndexError("property runs past its block")
    return None


def _skip_properties(buf: bytes, j: int, end: int) -> int:
    """Index after an MQTT 5 property block starting at ``j``."""
    length, shift = 0, 0
    while True:
        if j >= end:
            raise ProtocolError("truncated property length")
        byte = buf[j]
        j += 1
        length |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return j + length
        shift += 7
        if shift > 21:
            raise ProtocolError("property length longer than 4 bytes")
