"""The training engine: strategy, optimizer, schedule, loop and checkpoints."""
