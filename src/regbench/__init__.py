"""regbench: run a neural-network regularization study and report which differences are real."""

__all__ = ["__version__"]

__version__ = "0.1.0"
