"""The run's record: file names, run.json, liveness, finding and comparing runs."""
