"""A local stand-in for IoT Hub and IoT Edge devices that the real Azure SDKs connect to.

    fleet.py     one hub and N devices, started and stopped together (docs/fleet.md)
    hub/         the simulated IoT Hub: registry, twins, configurations and automatic
                 deployments, upstream store, state in SQLite, the service REST API
    device/      one IoT Edge device: edgeHub (MQTT), workload API, runtime and agent
                 (edgeAgent's role)
    deployment/  deployment documents: the manifest edgeAgent reads, the routes edgeHub runs
    query/       the IoT Hub query language (routes, twin queries, target conditions)
    mqtt/        the MQTT 3.1.1 server core under edgeHub
    local/       local stand-ins: repository modules as processes, Blob Storage, tool settings
    cli/         ``python -m simulator`` and the demo

Shared by all of them: ``errors`` (the one error tree), ``jsondoc`` (merge patches),
``messages`` (IoT messages and their MQTT topics), ``methods`` (direct method calls),
``sas`` (tokens), ``certs`` (the local CA), ``http_server`` (aiohttp on loopback).
"""
