"""The model from the config: Keras classes looked up by name, built, compiled; pretrained backbones."""
