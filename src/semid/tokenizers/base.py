"""Shared tokenizer machinery: code lookup, ID report, and atomic save/load of a tokenizer directory.

A tokenizer directory holds:
    config.json         {"tokenizer": name, "config": {...}}
    ids/codes.npy       int64 [n_items, L]  unique identifiers (after collision resolution)
    ids/codes_raw.npy   int64 [n_items, L0] the quantizer's raw codes (before resolution)
    ids/report.json     id_report(raw) + resolution numbers
    state.safetensors   learned weights (optional, tokenizer-specific)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from semid.errors import CheckpointError
from semid.io import atomic_write, read_json, save_npy, write_json
from semid.tokenizers.ids import id_report, resolve_collisions


class BaseTokenizer:
    """Implements encode/decode/report/save/load around ``codes_``; subclasses implement ``fit``."""

    name = "base"

    codes_: np.ndarray
    codes_raw_: np.ndarray
    codebook_sizes_: list[int]
    report_: dict

    # ---- set by subclasses at the end of fit -------------------------------------------------
    def _finalize(self, codes_raw: np.ndarray, raw_sizes: list[int], *, always_append: bool = False,
                  reassigned: np.ndarray | None = None) -> None:
        """Record raw codes, report on them, then make them unique (extra digit only if needed).

        reassigned: optional int64 [N, L] codes the tokenizer already de-conflicted within L positions
        (``semid.quantize.unique``); the digit then separates only what that left shared.
        """
        codes_raw = np.asarray(codes_raw, dtype=np.int64)
        self.codes_raw_ = codes_raw
        report = id_report(codes_raw, raw_sizes)
        start = codes_raw if reassigned is None else np.asarray(reassigned, dtype=np.int64)
        if reassigned is not None:
            report["n_items_reassigned"] = int((start != codes_raw).any(axis=1).sum())
        codes, n_collided = resolve_collisions(start, always_append=always_append)
        sizes = list(raw_sizes)
        if codes.shape[1] > codes_raw.shape[1]:
            sizes.append(int(codes[:, -1].max()) + 1)
        report["n_items_disambiguated"] = n_collided
        report["n_levels_final"] = int(codes.shape[1])
        report["conflict_rate_final"] = id_report(codes, sizes)["conflict_rate"]
        self.codes_ = codes
        self.codebook_sizes_ = sizes
        self.report_ = report
        self._lookup = None

    # ---- protocol ---------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "codes_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit(catalog, train) first")

    def encode(self, items: np.ndarray) -> np.ndarray:
        """int item indices [N] -> int64 codes [N, L]; unknown indices raise IndexError naming them."""
        self._check_fitted()
        items = np.asarray(items, dtype=np.int64)
        bad = (items < 0) | (items >= len(self.codes_))
        if bad.any():
            raise IndexError(f"unknown item indices {items[bad][:5].tolist()} (catalog has {len(self.codes_)} items)")
        return self.codes_[items]

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """int64 codes [N, L] -> item indices [N]; -1 where the tuple names no item."""
        self._check_fitted()
        if self._lookup is None:
            self._lookup = {tuple(r): i for i, r in enumerate(self.codes_.tolist())}
        codes = np.atleast_2d(np.asarray(codes, dtype=np.int64))
        return np.array([self._lookup.get(tuple(r), -1) for r in codes.tolist()], dtype=np.int64)

    # ---- persistence ------------------------------------------------------------------------
    def config_dict(self) -> dict:
        import dataclasses

        cfg = getattr(self, "config", None)
        return dataclasses.asdict(cfg) if cfg is not None and dataclasses.is_dataclass(cfg) else {}

    def state_tensors(self) -> dict:
        """Learned weights to persist (name -> torch.Tensor). Override in subclasses."""
        return {}

    def load_state_tensors(self, tensors: dict) -> None:
        """Restore what ``state_tensors`` returned. Override in subclasses."""

    def save(self, path: str | Path) -> None:
        self._check_fitted()
        path = Path(path)
        write_json(path / "config.json", {"tokenizer": self.name, "config": self.config_dict()})
        save_npy(path / "ids" / "codes.npy", self.codes_)
        save_npy(path / "ids" / "codes_raw.npy", self.codes_raw_)
        write_json(path / "ids" / "report.json", self.report_ | {"codebook_sizes": self.codebook_sizes_})
        tensors = self.state_tensors()
        if tensors:
            from safetensors.torch import save_file

            atomic_write(path / "state.safetensors", lambda p: save_file(
                {k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(p)))

    @classmethod
    def load(cls, path: str | Path):
        path = Path(path)
        meta = read_json(path / "config.json")
        if meta.get("tokenizer") != cls.name and cls.name != "base":
            raise CheckpointError(f"{path}/config.json holds a {meta.get('tokenizer')!r} tokenizer, not {cls.name!r}")
        obj = cls.__new__(cls)
        obj._init_from_config(meta.get("config", {}))
        try:
            obj.codes_ = np.load(path / "ids" / "codes.npy")
            obj.codes_raw_ = np.load(path / "ids" / "codes_raw.npy")
        except (OSError, ValueError) as e:
            raise CheckpointError(f"{path}/ids: cannot read codes ({e}); re-run tokenization") from None
        report = read_json(path / "ids" / "report.json")
        obj.codebook_sizes_ = list(report.pop("codebook_sizes"))
        obj.report_ = report
        obj._lookup = None
        st = path / "state.safetensors"
        if st.exists():
            from safetensors.torch import load_file

            try:
                obj.load_state_tensors(load_file(str(st)))
            except Exception as e:  # safetensors raises several types on corrupt files
                raise CheckpointError(f"{st}: corrupt or incompatible weights ({e})") from None
        return obj

    def _init_from_config(self, config: dict) -> None:
        """Rebuild ``self.config`` from its saved dict. Subclasses with a config dataclass override."""
        self.config = None
