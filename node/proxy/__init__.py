"""The paid call: meters (what a request may cost), the metered call (reserve, forward with
failover, settle), upstream calls and their health, answers as they stream, stored objects."""
