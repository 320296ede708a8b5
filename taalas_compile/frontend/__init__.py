"""Frontend: PyTorch module -> layer dataflow graph (the model IR)."""
