"""prefloop flows: the Prefect flows that run and gate the loop."""
