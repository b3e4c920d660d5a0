"""Topic names and topic filters (MQTT 3.1.1 section 4.7).

Levels are split on ``/``; ``+`` matches exactly one level (an empty one too) and ``#``
matches the rest, including the parent level itself (``a/#`` matches ``a``).
"""

from __future__ import annotations


def is_valid_topic_name(topic: str) -> bool:
    """A topic a message is published to: non-empty and free of wildcards."""
    return bool(topic) and "+" not in topic and "#" not in topic and "\x00" not in topic


def is_valid_topic_filter(topic_filter: str) -> bool:
    """A subscription filter: wildcards only as whole levels, ``#`` only as the last level."""
    if not topic_filter or "\x00" in topic_filter:
        return False
    levels = topic_filter.split("/")
    last = len(levels) - 1
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != last):
            return False
        if "+" in level and level != "+":
            return False
    return True


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether a valid ``topic_filter`` selects the valid topic name ``topic``."""
    # `$` topics belong to the server ($iothub/...): a filter that starts with a wildcard
    # must not match them [MQTT-4.7.2-1], so `#` alone never receives twin or method traffic.
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    filter_levels = topic_filter.split("/")
    topic_levels = topic.split("/")
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= len(topic_levels):
            return False
        if level != "+" and level != topic_levels[index]:
            return False
    return len(filter_levels) == len(topic_levels)
