"""ModelArgs: the shape of a Llama-family model, and its Hugging Face config.json mapping."""

from __future__ import annotations

from dataclasses import dataclass

from taalas_compile.errors import UserError


@dataclass(frozen=True)
class RopeScaling:
    """Llama 3 ("llama3") RoPE frequency scaling, as in Hugging Face ``_compute_llama3_parameters``."""

    factor: float = 8.0  # long wavelengths are divided by this
    low_freq_factor: float = 1.0  # wavelengths above original_max / low_freq_factor are scaled fully
    high_freq_factor: float = 4.0  # wavelengths below original_max / high_freq_factor are kept
    original_max_position_embeddings: int = 8192  # context length the model was pretrained with


# config.json fields whose other values change the arithmetic, and the values the die computes
# (None: the field may be absent, transformers' LlamaConfig default). Fields that only describe
# training or the runtime (torch_dtype, use_cache, initializer_range, attention_dropout, token ids)
# change nothing. pretraining_tp > 1 is accepted: transformers only split the same matmuls into
# slices with it (and no longer reads it); the function is the same.
_SUPPORTED: dict[str, tuple] = {
    "model_type": ("llama", None),  # mistral, qwen2, gemma, granite...: other blocks, other maths
    "hidden_act": ("silu", "swish", None),  # the SwiGLU gate the die computes (swish is silu)
    "attention_bias": (False, None),  # the die's linears have no bias
    "mlp_bias": (False, None),
    "sliding_window": (None,),  # attention over the whole context
    "quantization_config": (None,),  # pre-quantized (GPTQ, AWQ, fp8) tensors: we quantize ourselves
    "partial_rotary_factor": (1.0, None),  # RoPE on the whole head (transformers reads it for llama)
}


def check_supported(cfg: dict) -> None:
    """UserError naming the first config.json field whose value the die does not compute."""
    for key, allowed in _SUPPORTED.items():
        v = cfg.get(key)
        if v is not None and v not in allowed:
            want = " or ".join(repr(a) for a in allowed if a is not None) or "null"
            got = repr(v) if len(repr(v)) <= 60 else repr(v)[:57] + "..."
            raise UserError(f"{key} = {got} is not supported (the die computes only {key} = {want})")


@dataclass(frozen=True)
class ModelArgs:
    dim: int  # model width (hidden_size)
    n_layers: int  # decoder layers
    n_heads: int  # query heads
    n_kv_heads: int  # key/value heads (grouped-query attention when < n_heads)
    hidden_dim: int  # SwiGLU width (intermediate_size)
    vocab_size: int  # tokens
    norm_eps: float = 1e-5  # RMSNorm epsilon
    rope_theta: float = 10000.0  # RoPE base
    rope_scaling: RopeScaling | None = None  # Llama 3.1 frequency scaling, or plain RoPE
    tie_embeddings: bool = False  # lm_head shares model.embed_tokens.weight
    max_seq_len: int = 2048  # longest context (max_position_embeddings)
    head_dim: int = 0  # per-head width; 0 -> dim // n_heads

    def __post_init__(self) -> None:
        if self.head_dim == 0:
            object.__setattr__(self, "head_dim", self.dim // self.n_heads)
        if self.n_heads % self.n_kv_heads != 0:
            raise UserError(f"n_heads {self.n_heads} is not a multiple of n_kv_heads {self.n_kv_heads}")

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Hugging Face parameter names -> shapes, in checkpoint order (lm_head only when untied)."""
        d, hd, f = self.dim, self.head_dim, self.hidden_dim
        shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (self.vocab_size, d)}
        for i in range(self.n_layers):
            p = f"model.layers.{i}."
            shapes[p + "input_layernorm.weight"] = (d,)
            shapes[p + "self_attn.q_proj.weight"] = (self.n_heads * hd, d)
            shapes[p + "self_attn.k_proj.weight"] = (self.n_kv_heads * hd, d)
            shapes[p + "self_attn.v_proj.weight"] = (self.n_kv_heads * hd, d)
            shapes[p + "self_attn.o_proj.weight"] = (d, self.n_heads * hd)
            shapes[p + "post_attention_layernorm.weight"] = (d,)
            shapes[p + "mlp.gate_proj.weight"] = (f, d)
            shapes[p + "mlp.up_proj.weight"] = (f, d)
            shapes[p + "mlp.down_proj.weight"] = (d, f)
        shapes["model.norm.weight"] = (d,)
        if not self.tie_embeddings:
            shapes["lm_head.weight"] = (self.vocab_size, d)
        return shapes

    @property
    def n_params(self) -> int:
        total = 0
        for shape in self.param_shapes().values():
            n = 1
            for s in shape:
                n *= s
            total += n
        return total

    @classmethod
    def from_hf_config(cls, cfg: dict) -> ModelArgs:
        """Build from a Hugging Face Llama config.json dict (transformers 4 or 5 rope keys)."""
        required = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size")
        missing = [k for k in required if k not in cfg]
        if missing:
            raise UserError(f"config is missing keys: {', '.join(missing)}")
        check_supported(cfg)
        # transformers >= 5 folds rope_theta and the scaling into "rope_parameters"
        rope = cfg.get("rope_scaling") or cfg.get("rope_parameters") or {}
        check_supported({"partial_rotary_factor": rope.get("partial_rotary_factor")})  # where transformers 5 puts it
        theta = cfg.get("rope_theta", rope.get("rope_theta", 10000.0))
        rope_type = rope.get("rope_type", rope.get("type", "default"))
        if rope_type == "llama3":
            scaling = RopeScaling(
                factor=float(rope["factor"]),
                low_freq_factor=float(rope["low_freq_factor"]),
                high_freq_factor=float(rope["high_freq_factor"]),
                original_max_position_embeddings=int(rope["original_max_position_embeddings"]),
            )
        elif rope_type == "default":
            scaling = None
        else:
            raise UserError(f"rope_scaling rope_type = {rope_type!r} is not supported (the die computes default or llama3 RoPE)")
        n_heads = int(cfg["num_attention_heads"])
        return cls(
            dim=int(cfg["hidden_size"]),
            n_layers=int(cfg["num_hidden_layers"]),
            n_heads=n_heads,
            n_kv_heads=int(cfg.get("num_key_value_heads") or n_heads),
            hidden_dim=int(cfg["intermediate_size"]),
            vocab_size=int(cfg["vocab_size"]),
            norm_eps=float(cfg.get("rms_norm_eps", 1e-6)),
            rope_theta=float(theta),
            rope_scaling=scaling,
            tie_embeddings=bool(cfg.get("tie_word_embeddings", False)),
            max_seq_len=int(cfg.get("max_position_embeddings", 2048)),
            head_dim=int(cfg.get("head_dim") or 0),
        )

    def to_hf_config(self) -> dict:
        """Inverse of from_hf_config; usable as ``transformers.LlamaConfig(**d)``."""
        scaling = None
        if self.rope_scaling is not None:
            s = self.rope_scaling
            scaling = {
                "rope_type": "llama3",
                "factor": s.factor,
                "low_freq_factor": s.low_freq_factor,
                "high_freq_factor": s.high_freq_factor,
                "original_max_position_embeddings": s.original_max_position_embeddings,
            }
        return {
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "hidden_size": self.dim,
            "intermediate_size": self.hidden_dim,
            "num_hidden_layers": self.n_layers,
            "num_attention_heads": self.n_heads,
            "num_key_value_heads": self.n_kv_heads,
            "head_dim": self.head_dim,
            "vocab_size": self.vocab_size,
            "rms_norm_eps": self.norm_eps,
            "rope_theta": self.rope_theta,
            "rope_scaling": scaling,
            "tie_word_embeddings": self.tie_embeddings,
            "max_position_embeddings": self.max_seq_len,
            "hidden_act": "silu",
            "attention_bias": False,
            "mlp_bias": False,
        }
