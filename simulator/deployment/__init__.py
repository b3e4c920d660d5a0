"""IoT Edge deployments as documents: the manifest edgeAgent reads (``manifest``: schema
validation, typed module specs) and the routes edgeHub runs (``routes``: grammar and router).

The hub validates deployments with them, each device's runtime and edgeHub run them, and the
operator's genconfig checks the manifests it writes against the same rules.
"""
