"""Image encoder: open-clip vision tower over local image files (FusID-style album-art / item images).

open-clip and pillow are an optional extra (``pip install 'semid[image]'``) imported only when the
encoder runs; weights come from a local checkpoint path (``pretrained``) because there is no hub
access, or from open-clip's own cache if the name is one it already has.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from semid.encoders import is_missing


@dataclass(frozen=True)
class ImageEncoderConfig:
    """open-clip model and weights."""

    model: str = "ViT-B-32"  # open-clip architecture name
    pretrained: str = ""  # local checkpoint path (or an open-clip tag already cached); "" = random init
    batch_size: int = 32  # images per forward pass
    device: str = "cpu"  # cpu | cuda | auto
    normalize: bool = True  # L2-normalise the image embeddings


def _require():
    try:
        import open_clip
        from PIL import Image
    except ImportError:
        raise ImportError(
            "ImageEncoder needs open-clip and pillow: pip install 'semid[image]' (open-clip-torch, pillow)"
        ) from None
    return open_clip, Image


class ImageEncoder:
    """values: image paths or PIL images (None missing) -> (float32 [N, D], mask [N])."""

    name = "image"

    def __init__(self, *, config: ImageEncoderConfig = ImageEncoderConfig()):
        self.config = config
        self._model = None

    def config_dict(self) -> dict:
        import dataclasses

        d = dataclasses.asdict(self.config)
        d.pop("device")
        d.pop("batch_size")
        return d

    def _load(self):
        if self._model is None:
            open_clip, _ = _require()
            from semid.device import pick_device

            self._device = pick_device(self.config.device)
            model, _, preprocess = open_clip.create_model_and_transforms(
                self.config.model, pretrained=self.config.pretrained or None, device=self._device
            )
            self._model, self._preprocess = model.eval(), preprocess
        return self._model

    def encode(self, values: Sequence) -> tuple[np.ndarray, np.ndarray]:
        import torch

        _, Image = _require()
        model = self._load()
        mask = np.array([not is_missing(v) if not hasattr(v, "size") else True for v in values], dtype=bool)
        idx = np.flatnonzero(mask)
        chunks = []
        with torch.no_grad():
            for s in range(0, len(idx), self.config.batch_size):
                imgs = []
                for i in idx[s : s + self.config.batch_size]:
                    v = values[i]
                    img = Image.open(v) if isinstance(v, str) else v
                    imgs.append(self._preprocess(img.convert("RGB")))
                emb = model.encode_image(torch.stack(imgs).to(self._device)).float()
                if self.config.normalize:
                    emb = torch.nn.functional.normalize(emb, dim=-1)
                chunks.append(emb.cpu().numpy())
        dim = chunks[0].shape[1] if chunks else int(model.visual.output_dim)
        out = np.zeros((len(values), dim), dtype=np.float32)
        if chunks:
            out[idx] = np.concatenate(chunks)
        return out, mask
