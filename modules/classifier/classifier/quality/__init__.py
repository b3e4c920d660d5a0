"""The model-quality loop at the edge: per-model signals a canary is judged on, and the capture
of frames worth labelling into the device's local Blob Storage (docs/module-twin.md, "Capture"
and "Signals").

    loop.py              QualityLoop: fed every outcome, reports ``signals`` and ``capture``
    signals.py           mean confidence, low-confidence share, error rate, latency per model
    capture_settings.py  the desired ``capture`` section and the storage settings
    policies.py          which predictions to capture: policies, rate limits, daily budget
    capture_stage.py     the bounded queue and the writer that survives storage outages
    records.py           a capture as stored: frame bytes and a JSON sidecar
    blob_store.py        the only file importing azure-storage-blob
"""

from classifier.quality.capture_settings import CAPTURE_OFF, CaptureSettings, parse_capture
from classifier.quality.loop import QualityConfig, QualityLoop

__all__ = ["CAPTURE_OFF", "CaptureSettings", "QualityConfig", "QualityLoop", "parse_capture"]
