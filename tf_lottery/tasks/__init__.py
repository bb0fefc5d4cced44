"""An experiment as a graph of idempotent tasks, and the executors that run it."""
