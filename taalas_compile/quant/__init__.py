"""Quantizer: per-tensor bit choice (`plan.py`), group-wise integer codes (`codes.py`) and the
quantized PyTorch reference that runs exactly those codes (`reference.py`)."""
