"""The config: its schema (the sweep section included), loading, --set overrides, safe YAML, the JSON Schema.

Never imports Keras: validating a config costs no TensorFlow start-up.
"""
