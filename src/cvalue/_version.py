"""The installed version of cvalue."""

__all__ = ["__version__"]

__version__ = "0.1.0"
