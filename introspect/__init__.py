"""The operator's command, `introspect`: bring the system up, look at it, steer a run."""
