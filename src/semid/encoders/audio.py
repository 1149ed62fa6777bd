"""Audio encoder: fixed-length librosa descriptors (MFCC, chroma, spectral statistics) per clip.

A light stand-in for FusID's pretrained audio model: per clip, the mean and standard deviation over
time of 20 MFCCs, 12 chroma bins, spectral centroid / bandwidth / roll-off, zero-crossing rate and
RMS give a 2 * (20 + 12 + 5) = 74-d vector; columns are then z-scored over the catalog so Hz-valued
statistics do not dominate. librosa is an optional extra (``pip install 'semid[audio]'``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from semid.encoders import is_missing


@dataclass(frozen=True)
class AudioEncoderConfig:
    """Descriptor settings."""

    sample_rate: int = 22050  # resample every clip to this rate
    n_mfcc: int = 20  # MFCC coefficients
    max_seconds: float = 30.0  # use at most this much audio per clip
    standardize: bool = True  # z-score each descriptor column over the present items


def _require():
    try:
        import librosa
    except ImportError:
        raise ImportError("AudioEncoder needs librosa: pip install 'semid[audio]'") from None
    return librosa


class AudioEncoder:
    """values: audio paths, float waveforms (at ``sample_rate``) or (waveform, sr) pairs; None missing."""

    name = "audio"

    def __init__(self, *, config: AudioEncoderConfig = AudioEncoderConfig()):
        self.config = config

    def config_dict(self) -> dict:
        import dataclasses

        return dataclasses.asdict(self.config)

    @property
    def dim(self) -> int:
        return 2 * (self.config.n_mfcc + 12 + 5)

    def _load_wave(self, v, librosa) -> np.ndarray:
        cfg = self.config
        if isinstance(v, str):
            y, _ = librosa.load(v, sr=cfg.sample_rate, mono=True, duration=cfg.max_seconds)
            return y
        if isinstance(v, tuple):
            y, sr = v
            y = np.asarray(y, dtype=np.float32)
            return librosa.resample(y, orig_sr=sr, target_sr=cfg.sample_rate) if sr != cfg.sample_rate else y
        return np.asarray(v, dtype=np.float32)

    def descriptors(self, y: np.ndarray) -> np.ndarray:
        """waveform float [T] -> float32 [dim]: mean and std over frames of each descriptor."""
        librosa = _require()
        sr = self.config.sample_rate
        y = y[: int(self.config.max_seconds * sr)]
        feats = [
            librosa.feature.mfcc(y=y, sr=sr, n_mfcc=self.config.n_mfcc),
            librosa.feature.chroma_stft(y=y, sr=sr),
            librosa.feature.spectral_centroid(y=y, sr=sr),
            librosa.feature.spectral_bandwidth(y=y, sr=sr),
            librosa.feature.spectral_rolloff(y=y, sr=sr),
            librosa.feature.zero_crossing_rate(y),
            librosa.feature.rms(y=y),
        ]
        frames = min(f.shape[1] for f in feats)
        m = np.concatenate([f[:, :frames] for f in feats], axis=0)  # (37, frames)
        return np.concatenate([m.mean(axis=1), m.std(axis=1)]).astype(np.float32)

    def encode(self, values: Sequence) -> tuple[np.ndarray, np.ndarray]:
        librosa = _require()
        mask = np.array(
            [not (v is None or (isinstance(v, str) and is_missing(v))) for v in values], dtype=bool
        )
        out = np.zeros((len(values), self.dim), dtype=np.float32)
        for i in np.flatnonzero(mask):
            out[i] = self.descriptors(self._load_wave(values[i], librosa))
        if self.config.standardize and mask.sum() > 1:
            mu, sd = out[mask].mean(axis=0), out[mask].std(axis=0)
            out[mask] = (out[mask] - mu) / np.where(sd > 1e-8, sd, 1.0)
        return out, mask
