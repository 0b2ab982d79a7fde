"""Training machinery (Lightning): one base module with the shared evaluation path, one small module per
method's training step, callbacks, the checkpoint format and the trainer's construction."""
