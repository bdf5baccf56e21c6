"""Notifications of 异常办件 beyond the MQTT alerts topic: SMS through an HTTP gateway.

:class:`SmsNotifier` only delivers; which recipients get which anomaly (``notify.sms`` in
the hall config: ``kinds``, ``min_level``) is decided by the caller (docs/cases.md
section 5).
"""

from __future__ import annotations

from aggregator.notify.sms import SMS_MESSAGES, SmsNotifier, mask_phone

__all__ = ["SMS_MESSAGES", "SmsNotifier", "mask_phone"]
