"""The outbox's overflow policies, over the in-process hub with its sends held back."""

from __future__ import annotations

import asyncio

from classifier.metrics import Metrics
from edge_module.hub import OutboundMessage
from edge_module.local_hub import LocalHub
from edge_module.outbox import Outbox, OutboxConfig, OutboxPolicy, Outgoing
from edge_module.watchdog import HubWatchdog


class GatedHub(LocalHub):
    """Sends wait until the test opens the gate, as they wait for a slow edgeHub."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def send(self, output: str, message: OutboundMessage) -> None:
        await self.gate.wait()
        await super().send(output, message)


def item(n: int) -> Outgoing:
    message = OutboundMessage(b"{}", message_id=f"m{n}", correlation_id=f"f{n}")
    return Outgoing("predictions", message, None, f"f{n}")


async def started(policy: OutboxPolicy, capacity: int) -> tuple[GatedHub, Outbox, Metrics]:
    hub = GatedHub()
    await hub.connect()
    metrics = Metrics()
    config = OutboxConfig(capacity=capacity, policy=policy, send_window=1)
    outbox = Outbox(hub, config, metrics, HubWatchdog(60.0, lambda: hub.connected))
    outbox.start()
    return hub, outbox, metrics


async def test_drop_oldest_keeps_the_newest_and_counts_what_it_dropped() -> None:
    hub, outbox, metrics = await started(OutboxPolicy.DROP_OLDEST, capacity=3)
    for n in range(1, 7):
        await outbox.put(item(n))
        await asyncio.sleep(0)  # let the first send start (and wait at the gate)
    assert outbox.depth == 3
    hub.gate.set()
    assert await outbox.flush(5)
    await outbox.close()
    assert [m.correlation_id for m in hub.sent["predictions"]] == ["f1", "f5", "f6"]
    assert metrics.counters["outbox_dropped_full"] == 3


async def test_block_makes_put_wait_for_room() -> None:
    hub, outbox, metrics = await started(OutboxPolicy.BLOCK, capacity=2)
    await outbox.put(item(1))
    await outbox.put(item(2))
    third = asyncio.create_task(outbox.put(item(3)))
    await asyncio.sleep(0.05)
    assert not third.done()
    hub.gate.set()
    await asyncio.wait_for(third, 5)
    assert await outbox.flush(5)
    await outbox.close()
    assert [m.correlation_id for m in hub.sent["predictions"]] == ["f1", "f2", "f3"]
    assert metrics.counters["outbox_dropped_full"] == 0
