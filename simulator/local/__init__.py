"""Stand-ins for what a real device and cloud provide locally: this repository's modules as
processes (instead of images), Blob Storage (Azurite), and the tools' connection details."""
