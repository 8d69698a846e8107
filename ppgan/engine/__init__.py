"""The training engine: iteration loop, hooks and checkpoints."""
