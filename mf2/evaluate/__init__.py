"""The paper's evaluation protocol (Sect. 5.2-5.6): image quality, landmark localisation on
the restored faces, and identity preservation, for any method that writes images."""
