"""`nnrun sweep`: an Optuna study whose trials are ordinary runs; its workers and its report."""
