"""A Llama 3-shaped `tokenizer.json`: byte-level BPE with 128,000 regular ids and the 256 Llama 3
special tokens at their real ids (128,000..128,255), 128,256 in all.

    python benchmarks/tokenizer_llama3.py OUT_DIR [--text FILE] [--vocab 128256]

The BPE is trained with the `tokenizers` library on a text file (default: tinystories.txt), with
Llama 3's pre-tokenizer regex, byte-level alphabet and decoder, and its post-processor (BOS first).
A 197 kB text has far fewer distinct words than 128,000 merges need, so training stops early; the
regular ids above what it learned are deterministic filler tokens `<|filler_N|>` (N = their id):
ordinary vocabulary entries no merge produces, so the size and the special ids are exact while
encoding uses only the learned part. The 256 special tokens are "added tokens" as in the real file.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

N_SPECIAL = 256
# Llama 3's split: contractions, words with one leading non-letter, 1-3 digits, punctuation runs, spaces
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
TINYSTORIES = Path(__file__).resolve().parents[2] / "shared/models/tinystories_text/tinystories.txt"


def llama3_specials() -> list[str]:
    """The 256 special tokens in id order, from 128,000 (Llama 3.1's tokenizer_config.json)."""
    named = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|reserved_special_token_1|>",
             "<|finetune_right_pad_id|>", "<|reserved_special_token_2|>", "<|start_header_id|>", "<|end_header_id|>",
             "<|eom_id|>", "<|eot_id|>", "<|python_tag|>"]
    return named + [f"<|reserved_special_token_{k}|>" for k in range(3, 3 + N_SPECIAL - len(named))]


def _pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    return pre_tokenizers.Sequence([
        pre_tokenizers.Split(pattern=Regex(LLAMA3_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])


def train_bpe(text: Path, regular: int) -> Tokenizer:
    """Byte-level BPE on `text` with at most `regular` ids (fewer if the text runs out of merges)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = _pre_tokenizer()
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=regular, min_frequency=1, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    tok.train([str(text)], trainer)
    return tok


def llama3_tokenizer_json(text: Path = TINYSTORIES, vocab: int = 128_256) -> dict:
    """The tokenizer.json document: trained BPE, fillers up to `vocab` - 256, then the specials."""
    regular = vocab - N_SPECIAL
    doc = json.loads(train_bpe(text, regular).to_str())
    bpe = doc["model"]
    learned = len(bpe["vocab"])
    for i in range(learned, regular):  # ids no merge reaches: the exact vocabulary size
        bpe["vocab"][f"<|filler_{i}|>"] = i
    bpe.update(ignore_merges=True, fuse_unk=False, byte_fallback=False)
    doc["added_tokens"] = [{"id": regular + k, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
                            "normalized": False, "special": True} for k, s in enumerate(llama3_specials())]
    bos = {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}
    doc["post_processor"] = {"type": "Sequence", "processors": [
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        {"type": "TemplateProcessing",
         "single": [bos, {"Sequence": {"id": "A", "type_id": 0}}],
         "pair": [bos, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}},
                  {"Sequence": {"id": "B", "type_id": 1}}],
         "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [regular], "tokens": ["<|begin_of_text|>"]}}},
    ]}
    doc["normalizer"] = None
    doc.setdefault("truncation", None)
    doc.setdefault("padding", None)
    doc["_learned"] = learned
    return doc


def write_llama3_tokenizer(out_dir: Path, text: Path = TINYSTORIES, vocab: int = 128_256) -> dict:
    """Write out_dir/tokenizer.json and tokenizer_config.json; returns {"vocab", "learned", "fillers"}."""
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = llama3_tokenizer_json(text, vocab)
    learned = doc.pop("_learned")
    (out_dir / "tokenizer.json").write_text(json.dumps(doc, ensure_ascii=False))
    tok = Tokenizer.from_file(str(out_dir / "tokenizer.json"))
    regular = vocab - N_SPECIAL
    specials = llama3_specials()
    assert tok.get_vocab_size(with_added_tokens=True) == vocab, tok.get_vocab_size(with_added_tokens=True)
    assert tok.token_to_id("<|begin_of_text|>") == regular and tok.token_to_id("<|eot_id|>") == regular + 9
    config = {"bos_token": specials[0], "eos_token": specials[1],  # the base model's; Instruct says <|eot_id|>
             
              "model_max_length": 131072, "tokenizer_class": "PreTrainedTokenizerFast",
              "added_tokens_decoder": {str(regular + k): {"content": s, "special": True} for k, s in enumerate(specials)}}
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=1))
    return {"vocab": vocab, "learned": learned, "fillers": regular - learned}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--text", type=Path, default=TINYSTORIES)
    ap.add_argument("--vocab", type=int, default=128_256)
    a = ap.parse_args()
    print(json.dumps(write_llama3_tokenizer(a.out_dir, a.text, a.vocab)))


if __name__ == "__main__":
    main()
