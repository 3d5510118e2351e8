"""Who a face is: 128-d embeddings from dlib's face-recognition ResNet.

The faces stage uses them to tell tracks of one person from another (face_id) and,
optionally, to end a track whose face changed identity; evaluation uses them to measure
identity preservation.

The paper used FaceNet; its weights are not shipped in any package usable here, while dlib's
ResNet (99.38 % on LFW) ships in face-recognition-models. Both images of a pair are aligned
with the *same* landmarks (the ground truth of the sharp target), so the cosine measures how
the face looks, not where a localiser put its points.
"""

from __future__ import annotations

import numpy as np

from mf2.faces.models import face_recognition_resnet

_SHARED: "IdentityEmbedder | None" = None


def shared_embedder() -> "IdentityEmbedder":
    """One model per process (loading it takes ~0.3 s, on the first descriptor asked for)."""
    global _SHARED
    if _SHARED is None:
        _SHARED = IdentityEmbedder()
    return _SHARED


class IdentityEmbedder:
    def __init__(self) -> None:
        import dlib

        self._dlib = dlib
        self._net = None  # loaded on the first descriptor: chips alone do not need it

    @property
    def _model(self):
        if self._net is None:
            self._net = self._dlib.face_recognition_model_v1(str(face_recognition_resnet()))
        return self._net

    def embed(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """(128,) float64 descriptor of the face that ``landmarks`` (68x2) mark in ``image``."""
        return self.embed_chip(self.chip(image, landmarks))

    def chip(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """The aligned 150x150 RGB face the network reads (dlib's own alignment, 0.5 ms):
        keeping it instead of the frame lets a caller decide later whether the 75 ms
        descriptor is needed at all. ``embed_chip(chip(...))`` equals ``embed(...)`` exactly."""
        d = self._dlib
        lo, hi = landmarks.min(axis=0), landmarks.max(axis=0)
        rect = d.rectangle(int(round(lo[0])), int(round(lo[1])), int(round(hi[0])), int(round(hi[1])))
        shape = d.full_object_detection(rect, [d.point(int(round(x)), int(round(y))) for x, y in landmarks])
        return d.get_face_chip(np.ascontiguousarray(image), shape, size=150, padding=0.25)

    def embed_chip(self, chip: np.ndarray) -> np.ndarray:
        return np.asarray(self._model.compute_face_descriptor(chip), dtype=np.float64)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0 or nb == 0:
        return float("nan")
    return float(np.clip(np.dot(a, b) / (na * nb), -1.0, 1.0))
