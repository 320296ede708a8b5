"""Deterministic random weights, generated in bands of rows (never the whole model at once)."""

from __future__ import annotations

import hashlib

import torch

from taalas_compile.model.args import ModelArgs

# Gains over N(0, 1/in_features) that keep greedy decoding of a random model from settling on one
# token: sharper attention makes the output depend on context, and residual branches that outweigh
# the embedding stop a token from predicting itself.
_GAIN = {"q_proj": 2.0, "k_proj": 2.0, "o_proj": 2.0, "down_proj": 2.0}
BAND = 256  # rows drawn from one generator: any row range is produced without drawing the rest


def tensor_seed(seed: int, name: str) -> int:
    """The first 8 bytes of sha256(f"{seed}:{name}"), big-endian, as a uint64 generator seed."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


class SyntheticWeights:
    """Random weights; each tensor from its own generator, so it does not depend on the others.

    Rows [k*BAND, (k+1)*BAND) of a tensor come from the generator seeded by
    `tensor_seed(seed, f"{name}#{k}")`, so `rows(name, r0, r1)` draws only the bands it covers
    and equals `get(name)[r0:r1]`.

    Linears ~ N(0, 1/in_features) (q, k, o, down times 2), embedding ~ N(0, 1), norm gains
    1 + 0.1 N(0, 1); a tied model's final norm gain is N(0, 1), since with positive gains the
    unembedding favours the current token (its embedding dotted with itself) and decoding repeats it.
    """

    def __init__(self, args: ModelArgs, seed: int = 0):
        self.args = args
        self.seed = seed
        self._shapes = args.param_shapes()

    def names(self) -> list[str]:
        return list(self._shapes)

    def get(self, name: str) -> torch.Tensor:
        return self.rows(name, 0, self._shapes[name][0])

    def rows(self, name: str, r0: int, r1: int) -> torch.Tensor:
        shape = self._shapes[name]  # KeyError for a name the model does not have
        n, rest = shape[0], tuple(shape[1:])
        r0, r1 = max(r0, 0), min(r1, n)
        bands = []
        for k in range(r0 // BAND, -(-r1 // BAND)):
            g = torch.Generator().manual_seed(tensor_seed(self.seed, f"{name}#{k}"))
            b = torch.randn((min(BAND, n - k * BAND), *rest), generator=g, dtype=torch.float32)
            bands.append(b[max(r0 - k * BAND, 0): r1 - k * BAND])
        x = torch.cat(bands) if len(bands) != 1 else bands[0].contiguous()
        if name == "model.embed_tokens.weight" or (name == "model.norm.weight" and self.args.tie_embeddings):
            return x
        if name.endswith("norm.weight"):
            return 1.0 + 0.1 * x
        kind = name.split(".")[-2]  # q_proj, gate_proj, lm_head, ...
        return x * (_GAIN.get(kind, 1.0) / shape[1] ** 0.5)  # [out, in]

    def fingerprint(self) -> dict:
        return {"kind": "synthetic", "seed": self.seed, "files": []}
