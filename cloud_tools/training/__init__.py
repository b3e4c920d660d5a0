"""Training and export tools for the classifier's models (TensorFlow/Keras side, cloud only).

These tools write the model spec that the module reads, so they import the module's own
``classifier.model_spec``. The module's code root (``modules/classifier``) is not an
installed package; pytest and mypy put it on the path through pyproject.toml, and this
package adds it when it is missing so that ``python -m cloud_tools.train`` works from the
repository root without a PYTHONPATH. Doing it here, in the package's ``__init__``, means it
runs before any submodule imports ``classifier``.
"""

import importlib.util
import sys
from pathlib import Path

if importlib.util.find_spec("classifier") is None:
    _MODULE_ROOT = Path(__file__).resolve().parents[2] / "modules" / "classifier"
    sys.path.append(str(_MODULE_ROOT))
