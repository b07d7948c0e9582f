"""Training: the only layer that binds Keras classes (callbacks, backups, trackers, distribution, resume)."""
