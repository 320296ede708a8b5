"""Tokenizers: llama2.c .bin vocabularies and Hugging Face tokenizer.json files."""

from __future__ import annotations

import heapq
import re
import struct
from pathlib import Path
from typing import Protocol

from taalas_compile.errors import UserError

_BYTE_PIECE = re.compile(rb"<0x([0-9A-Fa-f]{2})>")


class Tokenizer(Protocol):
    bos_id: int
    eos_id: int  # the first of eos_ids
    eos_ids: tuple[int, ...]  # every id that ends a generation (Llama 3.1: end_of_text, eom, eot)
    vocab_size: int

    def encode(self, text: str, bos: bool = True) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...


class Llama2cTokenizer:
    """llama2.c format: int32 max_token_length, then per token float32 score, int32 length, bytes.

    Ids 0 <unk>, 1 BOS, 2 EOS, 3..258 the bytes 0x00..0xFF, then merged pieces scored -rank.
    """

    bos_id = 1
    eos_id = 2
    eos_ids = (2,)
    byte_offset = 3  # byte b is token b + 3

    def __init__(self, path: str | Path):
        path = Path(path)
        data = path.read_bytes()
        self.pieces: list[bytes] = []
        self.scores: list[float] = []
        pos = 4
        if len(data) < 4:
            raise UserError(f"{path}: truncated llama2.c tokenizer ({len(data)} bytes)")
        while pos < len(data):
            if pos + 8 > len(data):
                raise UserError(f"{path}: truncated llama2.c tokenizer at token {len(self.pieces)}")
            score, n = struct.unpack_from("<fi", data, pos)
            if n < 0 or pos + 8 + n > len(data):
                raise UserError(f"{path}: corrupt llama2.c tokenizer at token {len(self.pieces)}")
            self.pieces.append(data[pos + 8 : pos + 8 + n])
            self.scores.append(score)
            pos += 8 + n
        self.vocab_size = len(self.pieces)
        if self.vocab_size < self.byte_offset + 256:
            raise UserError(f"{path}: llama2.c tokenizer has only {self.vocab_size} tokens, expected >= 259")
        self.ids: dict[bytes, int] = {}
        for i, piece in enumerate(self.pieces):
            self.ids.setdefault(piece, i)

    def encode(self, text: str, bos: bool = True) -> list[int]:
        """llama2.c ``encode``: per-character pieces (or bytes), then best-score merges, leftmost first."""
        toks: list[int] = []
        for ch in " " + text if text else "":  # a dummy-prefix space first, like sentencepiece
            b = ch.encode("utf-8")
            if b in self.ids:
                toks.append(self.ids[b])
            else:
                toks.extend(x + self.byte_offset for x in b)
        merged = self._merge(toks)
        return [self.bos_id] + merged if bos else merged

    def _merge(self, toks: list[int]) -> list[int]:
        # Doubly linked list over positions; a heap of candidate merges keyed (-score, left position).
        # List order equals position order, so the smallest left position is the leftmost pair.
        n = len(toks)
        nxt = list(range(1, n + 1))
        prv = list(range(-1, n - 1))
        alive = [True] * n

        def candidate(i: int) -> tuple[float, int, int, int, int] | None:
            j = nxt[i]
            if j >= n:
                return None
            merged = self.ids.get(self.pieces[toks[i]] + self.pieces[toks[j]])
            if merged is None:
                return None
            return (-self.scores[merged], i, toks[i], toks[j], merged)

        heap = [c for i in range(n - 1) if (c := candidate(i)) is not None]
        heapq.heapify(heap)
        while heap:
            _, i, left, right, merged = heapq.heappop(heap)
            j = nxt[i] if alive[i] else n
            if j >= n or toks[i] != left or toks[j] != right:
                continue  # stale: a side was merged into something else since this was pushed
            toks[i] = merged
            alive[j] = False
            nxt[i] = nxt[j]
            if nxt[j] < n:
                prv[nxt[j]] = i
            for k in (prv[i], i):  # the two pairs that now touch the merged piece
                if k >= 0 and (c := candidate(k)) is not None:
                    heapq.heappush(heap, c)
        return [t for t, a in zip(toks, alive) if a]

    def decode(self, ids: list[int]) -> str:
        """Concatenate pieces; the first piece (or the first after BOS) loses its leading space."""
        out = bytearray()
        at_start = True
        for i in ids:
            if i in (self.bos_id, self.eos_id):
                at_start = i == self.bos_id
                continue
            piece = self.pieces[i]
            m = _BYTE_PIECE.fullmatch(piece)
            if m:
                out.append(int(m.group(1), 16))
            else:
                out += piece[1:] if at_start and piece.startswith(b" ") else piece
            at_start = False
        return out.decode("utf-8", errors="replace")


def _json_beside(path: Path) -> dict:
    import json

    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not valid JSON ({e})") from None
    return doc if isinstance(doc, dict) else {}


def special_ids(directory: str | Path) -> tuple[int | None, tuple[int, ...]]:
    """(BOS id, EOS ids) a Hugging Face model directory declares: `generation_config.json` first,
    then `config.json` (Llama 3.1: 128000 and [128001, 128008, 128009]); None / () where neither says."""
    directory = Path(directory)
    bos: int | None = None
    eos: tuple[int, ...] = ()
    for name in ("generation_config.json", "config.json"):
        doc = _json_beside(directory / name)
        if bos is None and isinstance(doc.get("bos_token_id"), int):
            bos = doc["bos_token_id"]
        e = doc.get("eos_token_id")
        if not eos and e is not None:
            ids = e if isinstance(e, list) else [e]
            if not all(isinstance(i, int) for i in ids):
                raise UserError(f"{directory / name}: eos_token_id must be an id or a list of ids, not {e!r}")
            eos = tuple(ids)
    return bos, eos


class HFTokenizer:
    """A tokenizer.json through the ``tokenizers`` library; BOS is added here, not by its template.

    BOS and EOS ids come from the model directory holding the file (generation_config.json, then
    config.json), else from tokenizer_config.json's bos_token / eos_token, else from the usual
    special-token names (`<|begin_of_text|>`, `<s>`, ...)."""

    _BOS = ("<|begin_of_text|>", "<s>", "<bos>")
    _EOS = ("<|end_of_text|>", "<|eot_id|>", "</s>", "<eos>")

    def __init__(self, path: str | Path):
        from tokenizers import Tokenizer as _Tok

        path = Path(path)
        try:
            self._tok = _Tok.from_file(str(path))
        except Exception as e:  # noqa: BLE001  tokenizers raises a bare Exception on malformed JSON
            raise UserError(f"{path}: not a readable tokenizer.json ({e})") from None
        self.vocab_size = self._tok.get_vocab_size(with_added_tokens=True)
        bos, eos = special_ids(path.parent)
        named = _json_beside(path.parent / "tokenizer_config.json")
        self.bos_id = bos if bos is not None else self._named_id(path, named.get("bos_token"), self._BOS)
        self.eos_ids = eos or (self._named_id(path, named.get("eos_token"), self._EOS),)
        self.eos_id = self.eos_ids[0]
        bad = [i for i in (self.bos_id, *self.eos_ids) if not 0 <= i < self.vocab_size]
        if bad:
            raise UserError(f"{path.parent}: special token id {bad[0]} is outside the {self.vocab_size}-token vocabulary")

    def _named_id(self, path: Path, name: object, candidates: tuple[str, ...]) -> int:
        if isinstance(name, dict):  # tokenizer_config.json may spell a token as {"content": ...}
            name = name.get("content")
        for tok in ((name,) if isinstance(name, str) else ()) + candidates:
            i = self._tok.token_to_id(tok)
            if i is not None:
                return i
        raise UserError(f"{path}: none of the special tokens {', '.join(candidates)} is in the vocabulary")

    def encode(self, text: str, bos: bool = True) -> list[int]:
        ids = self._tok.encode(text, add_special_tokens=False).ids
        return [self.bos_id] + ids if bos else ids

    def decode(self, ids: list[int]) -> str:
        return self._tok.decode(ids, skip_special_tokens=True)


def bos_id_of(tok: Tokenizer | None, source: object) -> int:
    """BOS id: the tokenizer's, else the checkpoint's (an HF directory's config.json or
    generation_config.json: Llama 3's is 128000), else 1 (llama2.c's)."""
    if tok is not None:
        return tok.bos_id
    bos = getattr(source, "bos_id", None)
    return bos if bos is not None else 1


def eos_ids_of(tok: Tokenizer | None, source: object) -> tuple[int, ...]:
    """Ids that end a generation: the tokenizer's, else the checkpoint's, else (2,) (llama2.c's)."""
    if tok is not None:
        return tok.eos_ids
    return getattr(source, "eos_ids", None) or (2,)


def load_tokenizer(path: str | Path) -> Tokenizer:
    """A llama2.c .bin tokenizer, or a Hugging Face tokenizer.json (a directory holding one works too)."""
    path = Path(path)
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.is_file():
        raise UserError(f"{path}: no such tokenizer file")
    if path.suffix == ".json":
        return HFTokenizer(path)
    return Llama2cTokenizer(path)
