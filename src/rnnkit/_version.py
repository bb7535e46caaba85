"""The package version, in a leaf module that anything in rnnkit may import."""

__version__ = "0.1.0"
