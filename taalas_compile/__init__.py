"""taalas-compile: hard-wire a Llama-family model into the two customisable masks of a base die."""

__version__ = "0.1.0"
