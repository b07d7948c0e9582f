"""nnrun: train Keras/TensorFlow neural networks from YAML configs."""

__version__ = "0.2.0"
