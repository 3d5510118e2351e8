"""Video probing, streaming decode and repeated-frame detection (ffmpeg)."""

from mf2.video.duplicates import DuplicateDetector
from mf2.video.probe import VideoInfo, ffmpeg_version, probe, require_ffmpeg
from mf2.video.reader import DecodeDamage, iter_frames

__all__ = ["DecodeDamage", "DuplicateDetector", "VideoInfo", "ffmpeg_version", "iter_frames", "probe", "require_ffmpeg"]
