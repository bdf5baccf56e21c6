"""Telling people: SMS through an HTTP gateway, and alert routing.

- :class:`SmsNotifier` (:mod:`aggregator.notify.sms`) only delivers texts.
- :mod:`aggregator.notify.routing`: :class:`~aggregator.notify.routing.AlertRouter`, the
  alert sink that decides who gets which alert by MQTT and SMS from the hall's ``routing``
  config (quiet hours, de-duplication, rate limits, escalation); its rules in
  :mod:`aggregator.notify.claims`, its channels in :mod:`aggregator.notify.channels`, its
  tables in :mod:`aggregator.notify.records`, people's actions (acknowledge, resolve,
  comment) in :mod:`aggregator.notify.actions` (docs/alert-routing.md).
- Which ``notify.sms`` recipients get which 异常办件 (``kinds``, ``min_level``) is decided
  by :class:`aggregator.cases.notify.CaseNotifier` (docs/cases.md section 5).
"""

from __future__ import annotations

from aggregator.notify.sms import SMS_MESSAGES, SmsNotifier, mask_phone

__all__ = ["SMS_MESSAGES", "SmsNotifier", "mask_phone"]
