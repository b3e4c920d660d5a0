"""The topic contract of modules on an MQTT v5 broker (docs/mqtt.md), as names and a parser.

<prefix>/streams/<output>/<client id>                 a module's output (frames, predictions)
$share/<group>/<prefix>/streams/<input>/+             a module's input, split across replicas
<prefix>/modules/<module>/desired                     desired settings (retained)
<prefix>/modules/<module>/reported/<client id>        one replica's reported state (retained)
<prefix>/modules/<module>/methods/<client id>/<name>  a method call for one replica
<prefix>/modules/<module>/methods/any/<name>          ... for whichever replica takes it
"""

from __future__ import annotations

from dataclasses import dataclass

ANY_REPLICA = "any"


@dataclass(frozen=True)
class Streamed:
    input_name: str
    source: str  # the publishing client's id (the topic's last level)


@dataclass(frozen=True)
class DesiredSettings:
    pass


@dataclass(frozen=True)
class MethodRequest:
    name: str


Addressed = Streamed | DesiredSettings | MethodRequest


@dataclass(frozen=True)
class Topics:
    prefix: str
    module: str
    client_id: str
    group: str

    def output(self, output: str) -> str:
        return f"{self.prefix}/streams/{output}/{self.client_id}"

    def input_filter(self, input_name: str) -> str:
        return f"$share/{self.group}/{self.prefix}/streams/{input_name}/+"

    @property
    def desired(self) -> str:
        return desired_topic(self.prefix, self.module)

    @property
    def reported(self) -> str:
        return f"{self._module_root}/reported/{self.client_id}"

    @property
    def method_filters(self) -> tuple[str, ...]:
        # The "any" filter is shared, so one call reaches one replica; a group of its own,
        # so a method call never takes a frame's place in the input group's rotation.
        return (
            f"{self._module_root}/methods/{self.client_id}/+",
            f"$share/{self.group}-methods/{self._module_root}/methods/{ANY_REPLICA}/+",
        )

    def classify(self, topic: str) -> Addressed | None:
        """What a message on ``topic`` is for this module, or None when it is none of ours."""
        if not topic.startswith(self.prefix + "/"):
            return None
        levels = topic[len(self.prefix) + 1 :].split("/")
        if len(levels) == 3 and levels[0] == "streams":
            return Streamed(levels[1], levels[2])
        if len(levels) < 3 or levels[:2] != ["modules", self.module]:
            return None
        if levels[2:] == ["desired"]:
            return DesiredSettings()
        if (
            len(levels) == 5
            and levels[2] == "methods"
            and levels[3]
            in (
                self.client_id,
                ANY_REPLICA,
            )
        ):
            return MethodRequest(levels[4])
        return None

    @property
    def _module_root(self) -> str:
        return f"{self.prefix}/modules/{self.module}"


def desired_topic(prefix: str, module: str) -> str:
    return f"{prefix}/modules/{module}/desired"


def reported_filter(prefix: str, module: str) -> str:
    return f"{prefix}/modules/{module}/reported/+"


def method_topic(prefix: str, module: str, replica: str, name: str) -> str:
    return f"{prefix}/modules/{module}/methods/{replica}/{name}"


def output_filter(prefix: str, output: str) -> str:
    return f"{prefix}/streams/{output}/+"
