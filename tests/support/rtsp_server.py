"""A real RTSP server for tests: GStreamer's gst-rtsp-server (Debian's packages), serving one
H.264 video file at ``rtsp://127.0.0.1:PORT/camera`` on loopback only, live (each client
joins the one running stream, as with a camera). At the end of the file the stream ends, as
a camera that drops does.

Runs under the system's python3 with PyGObject (``python3-gi``,
``gir1.2-gst-rtsp-server-1.0``, ``gstreamer1.0-plugins-good``; .ci/run installs them), not
in .venv: ``/usr/bin/python3 tests/support/rtsp_server.py PORT VIDEO.mp4``. Prints "ready"
once it listens; SIGTERM stops it.
"""

from __future__ import annotations

import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> int:
    port, video = sys.argv[1], sys.argv[2]
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    # qtdemux gives H.264 in avc form, which the payloader takes as it is (no parser needed);
    # the decode-free pipeline paces by the file's timestamps, as a camera sends.
    factory.set_launch(
        f'( filesrc location="{video}" ! qtdemux name=d d.video_0 ! queue '
        "! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
    factory.set_shared(True)
    server.get_mount_points().add_factory("/camera", factory)
    if server.attach(None) == 0:
        print("cannot listen", flush=True)
        return 1
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    print("ready", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
