"""Training: experiment configs, the trainer, mixed precision, DDP and the teacher cache."""
