"""Reports what the container was given, then runs for SLEEP_S and exits with EXIT_CODE."""

import os
import signal
import socket
import sys
import time
from pathlib import Path


def stop(_signum, _frame):
    print("probe: SIGTERM", flush=True)
    sys.exit(0)


signal.signal(signal.SIGTERM, stop)
print(f"probe: module={os.environ.get('IOTEDGE_MODULEID')} uid={os.getuid()}", flush=True)
print(f"probe: workload={os.environ.get('IOTEDGE_WORKLOADURI')}", flush=True)
try:
    with socket.socket(socket.AF_UNIX) as s:
        s.connect("/var/run/iotedge/workload.sock")
    print("probe: workload socket connects", flush=True)
except OSError as e:
    print(f"probe: workload socket refused: {e}", flush=True)
print(f"probe: edgeHub resolves to {socket.gethostbyname('edgeHub')}", flush=True)
starts = Path("/var/lib/probe/starts")
count = int(starts.read_text()) + 1 if starts.exists() else 1
starts.write_text(str(count))
print(f"probe: start number {count}", flush=True)
time.sleep(float(os.environ.get("SLEEP_S", "3600")))
sys.exit(int(os.environ.get("EXIT_CODE", "0")))
