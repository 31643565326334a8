"""hasten: reach a target quality with less compute."""

__version__ = "0.1.0"
