"""One simulated IoT Edge device: edgeHub (MQTT endpoint for its modules, routes, twins and
methods), the workload API, and a local runtime in edgeAgent's role that runs the modules."""
