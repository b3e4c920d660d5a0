"""The broker tests' Mosquitto: ``simulator.mosquitto``, which the MQTT demo shares."""

from simulator.mosquitto import ACL, PREFIX, USERS, Mosquitto, missing

__all__ = ["ACL", "PREFIX", "USERS", "Mosquitto", "missing"]
