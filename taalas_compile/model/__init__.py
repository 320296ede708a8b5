"""The reference Llama model, its weights and tokenizers, and the float/quantized quality metrics."""

from taalas_compile.model.args import ModelArgs, RopeScaling
from taalas_compile.model.generate import greedy
from taalas_compile.model.llama import (
    MLP,
    Attention,
    CausalAttention,
    DecoderLayer,
    Llama,
    LlamaBody,
    RMSNorm,
    build_meta_model,
    build_model,
)
from taalas_compile.model.perplexity import compare, document_windows, make_windows
from taalas_compile.model.rope import Rotary, inv_freq
from taalas_compile.model.sources import open_weights
from taalas_compile.model.tokenizer import Tokenizer, load_tokenizer
from taalas_compile.model.weights import WeightSource

__all__ = [
    "MLP",
    "Attention",
    "CausalAttention",
    "DecoderLayer",
    "Llama",
    "LlamaBody",
    "ModelArgs",
    "RMSNorm",
    "RopeScaling",
    "Rotary",
    "Tokenizer",
    "WeightSource",
    "build_meta_model",
    "build_model",
    "compare",
    "document_windows",
    "greedy",
    "inv_freq",
    "load_tokenizer",
    "make_windows",
    "open_weights",
]
