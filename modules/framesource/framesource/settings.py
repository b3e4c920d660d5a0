"""What the frame source reads and how it sends it: from the environment at start-up, and from
the module twin's desired ``source`` section at any time, each validated as a whole.

The environment gives the defaults (a deployment's ``env``); the twin's ``source`` section
overrides any of the source keys below. A twin section with one bad key is rejected whole:
the source that was running keeps running, and the reported properties say why. Deployment-
level settings (the output, the claim-check volume, the hub's) come from the environment only.

Source URLs (``SOURCE_URL`` / ``source.url``):
- ``synthetic:`` the default model's ten procedural classes, with ground truth (``truth``),
  optionally through a drifted camera (``DRIFT_LIGHTING`` ... / ``source.drift_lighting`` ...,
  each 0..1; docs/configuration.md lists the kinds);
- a video file (``/data/clip.mp4``, ``file:///data/clip.mp4``) or an image folder
  (``/data/images/``: JPEG, PNG, BMP in name order);
- ``rtsp://`` / ``rtsps://`` camera streams, ``http://`` / ``https://`` MJPEG (or any stream
  FFmpeg reads over HTTP). Credentials in a URL are never logged or reported.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from edge_module.env import EnvReader, boolean, choice, positive
from edge_module.errors import SettingsError
from synthdata import DRIFT_KINDS, Drift

# The synthetic camera's default seed: neither the training nor the held-out split of the
# default model, so what the camera shows is new to the model.
DEFAULT_SEED = 31_415_926


class SourceKind(StrEnum):
    SYNTHETIC = "synthetic"
    FILE = "file"
    FOLDER = "folder"
    RTSP = "rtsp"
    HTTP = "http"

    @property
    def live(self) -> bool:
        """A live source must be read as fast as it produces, whatever is sent."""
        return self in (SourceKind.RTSP, SourceKind.HTTP)


@dataclass(frozen=True)
class SourceSettings:
    url: str = "synthetic:"
    # Frames a second sent at most (frames in between are skipped); 0: every frame.
    fps: float = 10.0
    # Resize before encoding; 0 keeps the source's size (one of the two keeps the aspect).
    width: int = 0
    height: int = 0
    jpeg_quality: int = 85
    # Files and folders: start again at the end; pace by their own timestamps.
    loop: bool = False
    realtime: bool = True
    # Streams: RTP over the RTSP connection (tcp) or UDP; timeouts; reconnect backoff.
    rtsp_transport: str = "tcp"
    open_timeout_s: float = 10.0
    read_timeout_s: float = 10.0
    reconnect_max_s: float = 30.0
    # Stop after this many frames (0: never); the synthetic generator's seed.
    frame_count: int = 0
    seed: int = DEFAULT_SEED
    # The synthetic camera's drift, each kind a strength 0..1 (synthdata's Drift says what 1 is).
    drift_lighting: float = 0.0
    drift_colour_cast: float = 0.0
    drift_blur: float = 0.0
    drift_noise: float = 0.0
    drift_background: float = 0.0
    drift_angle: float = 0.0

    @property
    def drift(self) -> Drift:
        return Drift(**{kind: getattr(self, f"drift_{kind}") for kind in DRIFT_KINDS})

    @property
    def kind(self) -> SourceKind:
        return source_kind(self.url)

    @property
    def path(self) -> Path:
        """The file or folder of a file or folder source."""
        if self.url.startswith("file://"):
            return Path(urllib.parse.unquote(urllib.parse.urlsplit(self.url).path))
        return Path(self.url)

    def describe(self) -> dict[str, Any]:
        """For logs and reported properties: the URL without credentials."""
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        return shown | {"url": redact(self.url), "kind": self.kind.value}


# Twin keys (the field names) with the environment variables that set the same default.
SOURCE_VARIABLES = {
    "url": "SOURCE_URL",
    "fps": "FPS",
    "width": "WIDTH",
    "height": "HEIGHT",
    "jpeg_quality": "JPEG_QUALITY",
    "loop": "LOOP",
    "realtime": "REALTIME",
    "rtsp_transport": "RTSP_TRANSPORT",
    "open_timeout_s": "OPEN_TIMEOUT_S",
    "read_timeout_s": "READ_TIMEOUT_S",
    "reconnect_max_s": "RECONNECT_MAX_S",
    "frame_count": "FRAME_COUNT",
    "seed": "SEED",
} | {f"drift_{kind}": f"DRIFT_{kind.upper()}" for kind in DRIFT_KINDS}
_MAX_SIDE = 8_192
_TEXT_KEYS = ("url", "rtsp_transport")


def source_kind(url: str) -> SourceKind:
    scheme = urllib.parse.urlsplit(url).scheme.lower() if "://" in url or ":" in url else ""
    if url.strip().lower() in ("synthetic", "synthetic:"):
        return SourceKind.SYNTHETIC
    if scheme in ("rtsp", "rtsps"):
        return SourceKind.RTSP
    if scheme in ("http", "https"):
        return SourceKind.HTTP
    if scheme not in ("", "file"):
        raise ValueError(f"unsupported source scheme {scheme!r}")
    if url.startswith("file://"):
        url = urllib.parse.unquote(urllib.parse.urlsplit(url).path)
    return SourceKind.FOLDER if url.endswith("/") or Path(url).is_dir() else SourceKind.FILE


def redact(url: str) -> str:
    """``rtsp://user:secret@cam/x`` -> ``rtsp://***@cam/x``; query strings (tokens) go too."""
    parts = urllib.parse.urlsplit(url)
    if not parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    netloc = f"***@{host}" if "@" in parts.netloc else host
    query = "***" if parts.query else ""
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def source_from_env(env: Mapping[str, str]) -> SourceSettings:
    """The source settings of the environment; ``SettingsError`` names every problem."""
    reader = EnvReader(env)
    base = SourceSettings()
    raw = {key: env[variable] for key, variable in SOURCE_VARIABLES.items() if env.get(variable)}
    settings = _parsed(raw, base, reader.problems, lambda key: SOURCE_VARIABLES[key])
    if reader.problems:
        raise SettingsError("invalid source settings: " + "; ".join(reader.problems))
    return settings


def source_from_twin(section: object, base: SourceSettings) -> SourceSettings:
    """``base`` with the twin's ``source`` section applied; ``SettingsError`` rejects it whole."""
    if not isinstance(section, Mapping):
        raise SettingsError("desired 'source' must be an object")
    problems: list[str] = []
    unknown = sorted(str(k) for k in section if k not in SOURCE_VARIABLES)
    if unknown:
        problems.append(f"unknown keys {', '.join(unknown)} (known: {', '.join(SOURCE_VARIABLES)})")
    raw = {k: v for k, v in section.items() if k in SOURCE_VARIABLES and v is not None}
    settings = _parsed(raw, base, problems, lambda key: f"source.{key}")
    if problems:
        raise SettingsError("invalid desired source: " + "; ".join(problems))
    return settings


def _parsed(
    raw: Mapping[str, Any], base: SourceSettings, problems: list[str], label: Any
) -> SourceSettings:
    """``base`` with ``raw`` (strings from the environment, JSON values from the twin) applied,
    each value parsed and range-checked; problems are appended, the base value kept."""
    checks: dict[str, tuple[Any, Any]] = {
        "url": (_url, None),
        "fps": (float, lambda v: 0 <= v <= 240),
        "width": (int, lambda v: 0 <= v <= _MAX_SIDE),
        "height": (int, lambda v: 0 <= v <= _MAX_SIDE),
        "jpeg_quality": (int, lambda v: 1 <= v <= 100),
        "loop": (_flag, None),
        "realtime": (_flag, None),
        "rtsp_transport": (choice(("tcp", "udp")), None),
        "open_timeout_s": (float, positive),
        "read_timeout_s": (float, positive),
        "reconnect_max_s": (float, lambda v: 1 <= v <= 3600),
        "frame_count": (int, lambda v: v >= 0),
        "seed": (int, lambda v: 0 <= v < 2**63),
    } | {f"drift_{kind}": (float, lambda v: 0 <= v <= 1) for kind in DRIFT_KINDS}
    changes: dict[str, Any] = {}
    for key, value in raw.items():
        parse, check = checks[key]
        try:
            if isinstance(value, bool) and parse is not _flag:
                raise ValueError("expected a number or text, not true/false")
            if key in _TEXT_KEYS and not isinstance(value, str):
                raise ValueError("expected text")
            parsed = parse(value if isinstance(value, str) or parse is _flag else str(value))
        except (ValueError, TypeError) as e:
            problems.append(f"{label(key)}={value!r}: {e}")
            continue
        if check is not None and not check(parsed):
            problems.append(f"{label(key)}={value!r} is out of range")
            continue
        changes[key] = parsed
    settings = replace(base, **changes)
    if settings.kind is SourceKind.SYNTHETIC and settings.fps <= 0:
        problems.append("the synthetic source needs fps > 0 (it has no rate of its own)")
    if settings.kind is not SourceKind.SYNTHETIC and settings.drift.active:
        problems.append("drift applies to the synthetic source only (a real camera drifts itself)")
    return settings


def _url(value: str) -> str:
    text = value.strip()
    if not text or len(text) > 2_048 or re.search(r"[\x00-\x1f]", text):
        raise ValueError("expected a URL or a path")
    source_kind(text)  # raises for an unsupported scheme
    return text


def _flag(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return boolean(value)
    raise ValueError("expected true or false")
