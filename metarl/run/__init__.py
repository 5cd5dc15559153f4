"""Running learners: building one from a config, run directories, training with checkpoints
and resume, and evaluation on held-out tasks."""
