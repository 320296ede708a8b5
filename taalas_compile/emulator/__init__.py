"""The emulator: executes a chip image (tiles, ROM digits, connectivity) tile by tile with the
die's integer arithmetic, independently of the PyTorch reference it is checked against."""
