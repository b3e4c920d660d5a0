"""Training and export tools for the classifier's models (TensorFlow/Keras side, cloud only).

These tools write the model spec that the module reads, so they import the module's own
``classifier.model_spec``; ``scripts/bootstrap.sh`` puts the module's code root on the
environment's path.
"""
