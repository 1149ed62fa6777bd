"""Token vocabulary of a generative recommender: special tokens plus one or more semantic-ID code spaces.

Token layout (ids are assigned in the order things are added and never move afterwards):

    0 <pad>  1 <eos>  2 <bos>  3 <sep>  | named specials (task / modality tokens) | space "item": pos 0 codes,
    pos 1 codes, ... | space "text": ... | ...

A code ``c`` at position ``l`` of space ``s`` is token ``offset[s] + pos_offset[s][l] + c``, so one vocabulary
can hold several code namespaces (MusicRec's text and image identifiers) next to task-prefix tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from semid.errors import ConfigError, DataError

PAD, EOS, BOS, SEP = 0, 1, 2, 3
_BASE_SPECIALS = ("pad", "eos", "bos", "sep")

# namer(space, position, code) -> display name, e.g. "<a_12>"; MusicRec installs "<s1.1>"-style namers.
Namer = Callable[[str, int, int], str]


def default_namer(space: str, position: int, code: int) -> str:
    """TIGER-style names: position 0 -> ``<a_12>``, 1 -> ``<b_3>``... prefixed by the space unless it is "item"."""
    letter = chr(ord("a") + position) if position < 26 else f"p{position}_"
    prefix = "" if space == "item" else f"{space}:"
    return f"<{prefix}{letter}_{code}>"


@dataclass(frozen=True)
class CodeSpace:
    """One namespace of item codes: token range [offset, offset + sum(sizes))."""

    name: str
    offset: int  # first token id of the space
    sizes: tuple[int, ...]  # codebook size of each position

    @property
    def length(self) -> int:
        return len(self.sizes)

    @property
    def pos_offsets(self) -> np.ndarray:
        """int64 [L]: token id of code 0 at each position."""
        return self.offset + np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(np.int64)

    @property
    def n_tokens(self) -> int:
        return int(sum(self.sizes))


class SemanticVocab:
    """Specials + code spaces -> token ids, and back.

    >>> v = SemanticVocab()
    >>> v.add_space("item", [4, 4])
    >>> v.item_tokens("item", np.array([[1, 2]])).tolist()
    [[5, 10]]
    """

    def __init__(self) -> None:
        self._names: list[str] = []  # token id -> name, for specials only (spaces are named lazily)
        self._special: dict[str, int] = {}
        self._spaces: dict[str, CodeSpace] = {}
        self._namers: dict[str, Namer] = {}
        self._size = 0
        for name in _BASE_SPECIALS:
            self.add_special(name)

    # ------------------------------------------------------------------ building
    def add_special(self, name: str) -> int:
        """Add (or look up) a named special token such as a task prefix ``"task:u2i"``; returns its id."""
        if name in self._special:
            return self._special[name]
        tid = self._size
        self._special[name] = tid
        self._size += 1
        return tid

    def add_space(
        self, name: str, sizes: list[int] | tuple[int, ...], *, namer: Namer | None = None
    ) -> CodeSpace:
        """Append a code space with per-position codebook ``sizes``; returns it."""
        if name in self._spaces:
            raise ConfigError(f"code space {name!r} already exists in the vocabulary")
        sizes = tuple(int(s) for s in sizes)
        if not sizes or min(sizes) < 1:
            raise ConfigError(
                f"code space {name!r}: sizes must be a non-empty list of positive ints, got {sizes}"
            )
        space = CodeSpace(name=name, offset=self._size, sizes=sizes)
        self._spaces[name] = space
        self._size += space.n_tokens
        if namer is not None:
            self._namers[name] = namer
        return space

    def set_namer(self, space: str, namer: Namer) -> None:
        """Install a display-name hook for one space (MusicRec: ``<s1.1><a.3>``)."""
        self.space(space)
        self._namers[space] = namer

    # ------------------------------------------------------------------ lookups
    @property
    def size(self) -> int:
        """Total number of token ids (the model's vocabulary size)."""
        return self._size

    def __len__(self) -> int:
        return self._size

    def special(self, name: str) -> int:
        try:
            return self._special[name]
        except KeyError:
            raise ConfigError(f"no special token {name!r}; known: {sorted(self._special)}") from None

    @property
    def specials(self) -> dict[str, int]:
        return dict(self._special)

    def space(self, name: str) -> CodeSpace:
        try:
            return self._spaces[name]
        except KeyError:
            raise ConfigError(f"no code space {name!r}; known: {sorted(self._spaces)}") from None

    @property
    def spaces(self) -> dict[str, CodeSpace]:
        return dict(self._spaces)

    # ------------------------------------------------------------------ codes <-> tokens
    def item_tokens(self, space: str, codes: np.ndarray) -> np.ndarray:
        """int codes [N, L] -> int64 tokens [N, L]; raises DataError on out-of-range codes."""
        sp = self.space(space)
        codes = np.asarray(codes, dtype=np.int64)
        if codes.ndim != 2 or codes.shape[1] != sp.length:
            raise DataError(f"codes for space {space!r} must be [N, {sp.length}], got {codes.shape}")
        sizes = np.asarray(sp.sizes, dtype=np.int64)
        if codes.size and ((codes < 0).any() or (codes >= sizes).any()):
            raise DataError(f"codes for space {space!r} fall outside the codebook sizes {list(sp.sizes)}")
        return codes + sp.pos_offsets[None, :]

    def item_codes(self, space: str, tokens: np.ndarray) -> np.ndarray:
        """Inverse of ``item_tokens``: int64 tokens [N, L] -> codes [N, L], -1 where a token is not that slot's."""
        sp = self.space(space)
        tokens = np.asarray(tokens, dtype=np.int64)
        codes = tokens - sp.pos_offsets[None, :]
        bad = (codes < 0) | (codes >= np.asarray(sp.sizes, dtype=np.int64)[None, :])
        return np.where(bad, -1, codes)

    def token_name(self, token: int) -> str:
        token = int(token)
        for name, tid in self._special.items():
            if tid == token:
                return f"<{name}>"
        for sp in self._spaces.values():
            if sp.offset <= token < sp.offset + sp.n_tokens:
                local = token - sp.offset
                for pos, size in enumerate(sp.sizes):
                    if local < size:
                        return self._namers.get(sp.name, default_namer)(sp.name, pos, local)
                    local -= size
        raise DataError(f"token {token} is outside the vocabulary of size {self._size}")

    def decode_names(self, tokens) -> str:
        """Human-readable string of a token sequence, e.g. ``<bos><a_1><b_7><sep>``."""
        return "".join(self.token_name(t) for t in np.asarray(tokens).ravel().tolist())

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict:
        """JSON-ready description (namers are code, not saved: reinstall them after ``from_dict``)."""
        entries = [("special", n, tid) for n, tid in self._special.items()]
        entries += [("space", sp.name, sp.offset, list(sp.sizes)) for sp in self._spaces.values()]
        entries.sort(key=lambda e: e[2])
        return {"entries": [list(e) for e in entries], "size": self._size}

    @classmethod
    def from_dict(cls, d: dict) -> SemanticVocab:
        v = cls()
        for e in d["entries"]:
            if e[0] == "special":
                got = v.add_special(e[1])
            else:
                got = v.add_space(e[1], e[3]).offset
            if got != e[2]:
                raise DataError(f"vocabulary description is inconsistent at {e[1]!r} (id {got} != {e[2]})")
        return v

    @classmethod
    def for_items(cls, codebook_sizes: list[int], *, space: str = "item") -> SemanticVocab:
        """The common case: base specials + one item code space."""
        v = cls()
        v.add_space(space, codebook_sizes)
        return v
