"""``python -m cloud_tools.train``: the seed CNN trainer (see cloud_tools/training/train.py)."""

from cloud_tools.training.train import main

if __name__ == "__main__":
    raise SystemExit(main())
