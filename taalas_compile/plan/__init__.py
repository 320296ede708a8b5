"""Planning analyses (fit, performance, output size) and their reports. Analyses return data."""
