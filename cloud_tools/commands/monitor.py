"""``python -m cloud_tools monitor [--follow]``: device-to-cloud messages, one JSON per line.

Three sources, the first two as ``az iot hub monitor-events`` users expect:
- a real hub's Event Hubs-compatible endpoint (``--eventhub-connection-string`` or
  ``EVENTHUB_CONNECTION_STRING``, from the hub's "Built-in endpoints" page), read with
  azure-eventhub from the end of the stream (``--from-start`` replays what is retained);
- the simulator's upstream store (``--upstream-store`` or ``EDGE_SIM_UPSTREAM_STORE``, which
  ``python -m simulator env`` exports): the simulator has no AMQP endpoint, so its messages
  are read where its edgeHub stores them;
- an MQTT v5 broker (``--mqtt``): the modules' outputs from now on (a broker keeps no
  history), ``--device`` the publishing replica or source, ``--output`` the output.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from cloud_tools.broker_service import BrokerService, add_broker_arguments
from cloud_tools.errors import USAGE, CliError

ENV_EVENTHUB = "EVENTHUB_CONNECTION_STRING"
ENV_SIM_STORE = "EDGE_SIM_UPSTREAM_STORE"


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("monitor", help="print device-to-cloud messages")
    parser.add_argument("--follow", action="store_true", help="keep printing new messages")
    parser.add_argument("--device")
    parser.add_argument("--module")
    parser.add_argument("--output", help="simulator only: the module output")
    parser.add_argument("--last", type=int, default=20, help="stored messages shown first")
    parser.add_argument("--upstream-store", type=Path)
    parser.add_argument("--eventhub-connection-string")
    parser.add_argument("--consumer-group", default="$Default")
    parser.add_argument("--from-start", action="store_true")
    parser.add_argument("--count", type=int, help="with --mqtt: stop after this many messages")
    add_broker_arguments(parser)
    parser.set_defaults(run=_monitor)


def _monitor(args: argparse.Namespace) -> int:
    if args.mqtt:
        return _from_broker(args)
    eventhub = args.eventhub_connection_string or os.environ.get(ENV_EVENTHUB)
    store = args.upstream_store or (
        Path(os.environ[ENV_SIM_STORE]) if os.environ.get(ENV_SIM_STORE) else None
    )
    if eventhub:
        return _from_event_hub(args, eventhub)
    if store is not None:
        return asyncio.run(_from_simulator(args, store))
    raise CliError(
        f"nothing to monitor: set {ENV_EVENTHUB} (a hub) or {ENV_SIM_STORE} (the simulator)",
        USAGE,
    )


async def _from_simulator(args: argparse.Namespace, path: Path) -> int:
    from simulator.hub.upstream import MessageFilter, UpstreamStore

    if not path.exists():
        raise CliError(f"no upstream store at {path}: is the simulator running?", USAGE)
    store = UpstreamStore.open(path)
    where = MessageFilter(device_id=args.device, module_id=args.module, output_name=args.output)
    try:
        stored = store.read(where=where)
        for message in stored[-args.last :] if args.last else []:
            print(json.dumps(message.to_json()), flush=True)
        if args.follow:
            last = stored[-1].sequence_number if stored else store.last_sequence()
            async for message in store.follow(after_sequence=last, where=where):
                print(json.dumps(message.to_json()), flush=True)
    finally:
        store.close()
    return 0


def _from_event_hub(args: argparse.Namespace, connection: str) -> int:
    from azure.eventhub import EventData, EventHubConsumerClient

    client = EventHubConsumerClient.from_connection_string(connection, args.consumer_group)

    def on_event(partition: Any, event: EventData | None) -> None:
        if event is None:
            return
        system = {
            (k.decode() if isinstance(k, bytes) else str(k)): (
                v.decode() if isinstance(v, bytes) else v
            )
            for k, v in (event.system_properties or {}).items()
        }
        device = system.get("iothub-connection-device-id")
        module = system.get("iothub-connection-module-id")
        if (args.device and device != args.device) or (args.module and module != args.module):
            return
        doc = {
            "deviceId": device,
            "moduleId": module,
            "enqueuedTimeUtc": str(event.enqueued_time),
            "properties": {str(k): str(v) for k, v in (event.properties or {}).items()},
            "body": {"text": event.body_as_str(encoding="utf-8")},
        }
        print(json.dumps(doc), flush=True)

    start = "-1" if args.from_start else "@latest"
    # Ctrl-C is how a follow ends: the client closes on the way out either way.
    with client, contextlib.suppress(KeyboardInterrupt):
        client.receive(on_event=on_event, starting_position=start, max_wait_time=None)
    return 0


def _from_broker(args: argparse.Namespace) -> int:
    service = BrokerService.from_args(args)
    prefix = service.address.topic_prefix
    topic_filter = f"{prefix}/streams/{args.output or '+'}/{args.device or '+'}"
    done = threading.Event()
    printed = 0

    def on_message(message: Any) -> None:
        nonlocal printed
        if done.is_set():
            return
        print(json.dumps(_broker_message(message)), flush=True)
        printed += 1
        if args.count is not None and printed >= args.count:
            done.set()

    # Ctrl-C is how a follow ends: the connection closes on the way out either way.
    with service, contextlib.suppress(KeyboardInterrupt):
        service.follow(topic_filter, on_message, done)
    return 0


def _broker_message(message: Any) -> dict[str, Any]:
    """The upstream store's JSON shape, from an MQTT v5 message on an output topic."""
    properties = message.properties
    user = dict(getattr(properties, "UserProperty", []) or [])
    correlation = getattr(properties, "CorrelationData", None)
    system = {
        "contentType": getattr(properties, "ContentType", None),
        "contentEncoding": user.pop("content-encoding", None),
        "messageId": user.pop("message-id", None),
        "correlationId": correlation.decode("utf-8", "replace") if correlation else None,
    }
    _, _, output, source = message.topic.rsplit("/", 3)
    try:
        body: dict[str, str] = {"text": message.payload.decode("utf-8")}
    except UnicodeDecodeError:
        body = {"base64": base64.b64encode(message.payload).decode("ascii")}
    return {
        "topic": message.topic,
        "deviceId": source,
        "outputName": output,
        "systemProperties": {k: v for k, v in system.items() if v is not None},
        "properties": user,
        "body": body,
    }
