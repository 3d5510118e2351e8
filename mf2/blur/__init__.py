"""Blur simulation: camera response, window planning and streaming averaging (the face crop they share is mf2.faces.crop)."""
