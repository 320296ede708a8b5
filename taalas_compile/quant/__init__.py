"""Quantizer: calibration windows (`calibrate.py`), bits and group per tensor (`bits.py`: rules, or
a knapsack in `allocate.py` on ΔKL from `sensitivity.py` or the streamed proxy of `proxy.py`),
codes streamed through the decoder one layer at a time (`stream.py`: `layer.py` GPTQ of one layer on
`gptq.py`, `head.py` embedding/head in row bands and the final quality) into per-unit result files
(`etched.py`, the one reader of a chip's codes), or round-to-nearest (`codes.py`); fp16 scales tuned
end to end where the model fits (`tune.py`); the die's activation arithmetic (`arith.py`); results
cached by content (`cache.py`); the quantized PyTorch reference, the golden model on the die's
exact arithmetic (`golden.py`, built by `reference.py`'s callers), and the layer-by-layer one
(`reference_stream.py`). Imports are acyclic: arith <- tune, layer <- stream <-
reference. See docs/quantization.md."""
