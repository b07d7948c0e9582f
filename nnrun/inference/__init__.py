"""A run's saved model put to use: evaluate, predict, export, and the runtimes that run exports."""
