"""mf2: motion-blurred / sharp face pairs from real face videos."""

__version__ = "0.1.0"
