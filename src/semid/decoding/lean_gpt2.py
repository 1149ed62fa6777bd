"""A lean GPT-2 DecodeStep: the same weights as a HF ``GPT2LMHeadModel``, a hand-written block, a
preallocated KV cache, no generic ``generate`` / Cache machinery.

Why: for the small GPT-2s used over semantic IDs (2 x 128, L = 3-4 codes), a HF forward spends most
of its time in per-call Python (mask builders, cache objects, output wrappers), not arithmetic. Here a
step is ~15 tensor ops per layer. The prompt's keys / values are kept once per *example* (B, H, T, d) and
shared by its W beams (their queries are batched against it), so reordering beams copies only the L-1
generated keys (R, H, L-1, d), not the whole prompt cache as a generic beam search does; the padding
bias is built once.

Numerics follow HF GPT-2 (pre-LN blocks, ``gelu_new`` = tanh GELU, 1/sqrt(d) attention scale, tied LM
head), so results equal ``GPT2Step``'s up to float rounding (parity tests against it and the oracle).
Only the standard GPT-2 options are supported; anything else is refused at construction.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from semid.errors import ConfigError


class LeanGPT2Step:
    """DecodeStep over a HF GPT2LMHeadModel's weights (eval mode); ``max_new`` = tokens generated after the prompt."""

    def __init__(self, model: torch.nn.Module, max_new: int) -> None:
        cfg = model.config
        if cfg.activation_function not in ("gelu_new", "gelu_pytorch_tanh") or not cfg.scale_attn_weights or (
            cfg.scale_attn_by_inverse_layer_idx or cfg.reorder_and_upcast_attn
        ):
            raise ConfigError("LeanGPT2Step supports standard GPT-2 blocks only; use GPT2Step for this model")
        tr = model.transformer
        self.wte, self.wpe, self.ln_f = tr.wte.weight, tr.wpe.weight, tr.ln_f
        self.lm_head = model.lm_head.weight  # (V, C), tied to wte in GPT-2
        self.blocks = list(tr.h)
        self.H = cfg.n_head
        self.C = cfg.n_embd
        self.d = self.C // self.H
        self.max_new = int(max_new)
        self.scale = self.d**-0.5  # HF scale_attn_weights

    # ------------------------------------------------------------------ one block
    def _attn_proj(self, blk, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """h (N, T, C) -> q, k, v (N, H, T, d)."""
        N, T, _ = h.shape
        qkv = torch.addmm(blk.attn.c_attn.bias, h.reshape(N * T, self.C), blk.attn.c_attn.weight)
        q, k, v = qkv.view(N, T, 3, self.H, self.d).permute(2, 0, 3, 1, 4).unbind(0)
        return q, k, v

    def _finish(self, blk, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Residual + MLP after attention output y (N, H, T, d); x (N, T, C)."""
        N, T, _ = x.shape
        y = y.transpose(1, 2).reshape(N * T, self.C)
        x = x + torch.addmm(blk.attn.c_proj.bias, y, blk.attn.c_proj.weight).view(N, T, self.C)
        h = blk.ln_2(x).reshape(N * T, self.C)
        m = F.gelu(torch.addmm(blk.mlp.c_fc.bias, h, blk.mlp.c_fc.weight), approximate="tanh")
        return x + torch.addmm(blk.mlp.c_proj.bias, m, blk.mlp.c_proj.weight).view(N, T, self.C)

    def _logits(self, x_last: torch.Tensor) -> torch.Tensor:
        return self.ln_f(x_last) @ self.lm_head.T  # (N, V)

    # ------------------------------------------------------------------ DecodeStep
    @torch.no_grad()
    def start(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, Any]:
        ids, mask, pos = batch["input_ids"], batch["attention_mask"].bool(), batch["position_ids"]  # (B, T)
        B, T = ids.shape
        x = self.wte[ids] + self.wpe[pos]  # (B, T, C)
        causal = torch.ones(T, T, dtype=torch.bool, device=ids.device).tril()
        # key j visible to query i: causal and not padding; a padding query sees itself (no all -inf row)
        allow = (causal[None] & mask[:, None, :]) | torch.eye(T, dtype=torch.bool, device=ids.device)[None]
        allow = allow[:, None]  # (B, 1, T, T)
        Kp = x.new_empty(len(self.blocks), B, self.H, T, self.d)  # prompt keys / values, shared by the beams
        Vp = torch.empty_like(Kp)
        for i, blk in enumerate(self.blocks):
            q, k, v = self._attn_proj(blk, blk.ln_1(x))
            Kp[i], Vp[i] = k, v
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=allow)
            x = self._finish(blk, x, y)
        bias = torch.zeros(B, 1, 1, T, dtype=x.dtype, device=x.device).masked_fill_(~mask[:, None, None], float("-inf"))
        state = {"Kp": Kp, "Vp": Vp, "bias": bias, "pos": pos[:, -1] + 1, "Kg": None, "Vg": None, "g": 0}
        return self._logits(x[:, -1]), state

    @torch.no_grad()
    def advance(self, state: Any, parent: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """Row r of this call belongs to example r // W (the beam search keeps parents inside their example),
        so the prompt cache is never copied per beam: only the few generated keys are reordered."""
        Kp, Vp, bias, g = state["Kp"], state["Vp"], state["bias"], state["g"]
        nl, B, H, T, d = Kp.shape
        R = len(tokens)
        W = R // B
        if state["Kg"] is None:
            Kg = Kp.new_zeros(nl, R, H, self.max_new, d)  # (n_layer, R, H, max_new, d) generated keys
            Vg = torch.zeros_like(Kg)
        else:
            Kg, Vg = state["Kg"].index_select(1, parent), state["Vg"].index_select(1, parent)
        if g >= self.max_new:
            raise ConfigError(f"LeanGPT2Step was built for {self.max_new} new tokens; the search asked for more")
        pos = state["pos"].repeat_interleave(W)  # (R,) every beam of an example is at the same position
        x = (self.wte[tokens] + self.wpe[pos])[:, None]  # (R, 1, C)
        for i, blk in enumerate(self.blocks):
            q, k, v = self._attn_proj(blk, blk.ln_1(x))  # (R, H, 1, d)
            Kg[i, :, :, g : g + 1], Vg[i, :, :, g : g + 1] = k, v
            qe = q.view(B, W, H, d).transpose(1, 2)  # (B, H, W, d): the W beams of an example share its prompt
            s_p = qe @ Kp[i].transpose(-1, -2) * self.scale + bias  # (B, H, W, T)
            s_g = (q @ Kg[i, :, :, : g + 1].transpose(-1, -2)).view(B, W, H, g + 1).transpose(1, 2) * self.scale
            p = torch.softmax(torch.cat([s_p, s_g], dim=-1), dim=-1)  # (B, H, W, T + g + 1)
            y_p = p[..., :T] @ Vp[i]  # (B, H, W, d)
            p_g = p[..., T:].transpose(1, 2).reshape(R, H, 1, g + 1)
            y = y_p.transpose(1, 2).reshape(R, H, 1, d) + p_g @ Vg[i, :, :, : g + 1]  # (R, H, 1, d)
            x = self._finish(blk, x, y)
        state.update(Kg=Kg, Vg=Vg, g=g + 1, pos=state["pos"] + 1)
        return self._logits(x[:, 0]), state
