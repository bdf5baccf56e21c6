"""A lean MQTT subscriber for the aggregator's fact stream (see :mod:`.subscriber`)."""
