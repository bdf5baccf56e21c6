"""The 异常办件 register: anomalies opened from facts or by officers, their lifecycle,
deadlines on the hall's working-day calendar, escalation to red cards and notification.

The rules are in ``docs/cases.md`` (sections 3–5). Modules: :mod:`.models` (tables),
:mod:`.lifecycle` (state machine, deadlines, transitions), :mod:`.from_facts` (opening
and updating anomalies from facts), :mod:`.register` (:class:`CaseRegister`, the entry
point) and :mod:`.notify` (alerts and SMS after commit).
"""
