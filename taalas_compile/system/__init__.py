"""Multi-die systems: a model larger than one die as pipeline stages over copies of one base die."""
