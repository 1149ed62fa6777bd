"""Image and audio encoders on tiny generated inputs; skipped when the optional extra is missing."""

from __future__ import annotations

import numpy as np
import pytest

from semid.encoders.audio import AudioEncoder, AudioEncoderConfig
from semid.encoders.image import ImageEncoder, ImageEncoderConfig


def test_audio_descriptors_fixed_length():
    pytest.importorskip("librosa")
    sr = 8000
    t = np.arange(sr) / sr
    waves = [
        np.sin(2 * np.pi * 440 * t).astype(np.float32),
        None,
        (np.random.default_rng(0).normal(size=sr), sr),
    ]
    emb, mask = AudioEncoder(config=AudioEncoderConfig(sample_rate=sr)).encode(waves)
    assert emb.shape == (3, 74) and mask.tolist() == [True, False, True] and np.isfinite(emb).all()


def test_image_encoder_random_weights():
    pytest.importorskip("open_clip")
    from PIL import Image

    imgs = [Image.fromarray(np.full((32, 32, 3), v, np.uint8)) for v in (0, 128)] + [None]
    emb, mask = ImageEncoder(config=ImageEncoderConfig(model="ViT-B-32")).encode(imgs)
    assert emb.shape[0] == 3 and mask.tolist() == [True, True, False]


def test_missing_extra_gives_clear_error(monkeypatch):
    import builtins

    real = builtins.__import__

    def fake(name, *a, **k):
        if name in ("librosa", "open_clip"):
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(ImportError, match=r"semid\[audio\]"):
        AudioEncoder().encode([None])
    with pytest.raises(ImportError, match=r"semid\[image\]"):
        ImageEncoder().encode([None])
