"""Blur simulation: camera response, face crops, window planning and streaming averaging."""
