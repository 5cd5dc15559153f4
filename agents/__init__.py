"""Built-in meta-learners; importing this package registers them all."""
