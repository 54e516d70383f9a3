"""Training: optimizer, pure steps, checkpoints, metrics log, and the run loop."""
