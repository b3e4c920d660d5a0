"""The simulated IoT Hub: identity registry, twins, configurations (automatic deployments),
the upstream message store, and the service REST API the azure-iot-hub SDK talks to."""
