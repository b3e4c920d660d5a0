"""Model delivery through the module twin: desired properties, download, verification, the
persistent cache, loading with a self-test, the hot swap, rollback and the reported state.

Public surface: ``DesiredProperties`` (the schema), ``ModelUpdater`` (the reconciler),
``UpdateSettings``, ``DownloadPolicy``, ``start_model`` (which model to start on).
"""

from classifier.model_update.desired import DesiredProperties, DesiredPropertiesError
from classifier.model_update.download import DownloadPolicy
from classifier.model_update.startup import Startup, start_model
from classifier.model_update.updater import ModelUpdater, UpdateSettings

__all__ = [
    "DesiredProperties",
    "DesiredPropertiesError",
    "DownloadPolicy",
    "ModelUpdater",
    "Startup",
    "UpdateSettings",
    "start_model",
]
