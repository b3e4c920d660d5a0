"""Captured frames on the operator's side: pulled from Blob Storage, labelled, trained on.

captures.py      a local dataset folder: the captures (frame + sidecar) and their labels
pull.py          ``dataset pull``: captures from a container, by device, time and policy
stats.py         ``dataset stats``: what a dataset holds
label_server.py  ``label``: the labelling web page (loopback only) and its JSON API
evaluate.py      ``evaluate``: models' accuracy on the labelled hold-out and synthetic data
"""
