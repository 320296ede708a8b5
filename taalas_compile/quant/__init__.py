"""Quantizer: calibration windows (`calibrate.py`), bits and group per tensor (`plan.py`: rules, or
a knapsack in `allocate.py` on ΔKL from `sensitivity.py`), codes by GPTQ (`gptq.py`, run layer by
layer in `calibrate.py`) or round-to-nearest (`codes.py`), fp16 scales tuned end to end (`tune.py`),
results cached by content (`cache.py`), and the quantized PyTorch reference that runs exactly the
etched codes (`reference.py`). See docs/quantization.md."""
