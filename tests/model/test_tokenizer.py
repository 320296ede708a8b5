
import pytest

from taalas_compile.errors import UserError
from taalas_compile.model import load_tokenizer


def reference_encode(tok, text: str) -> list[int]:
    """The models README algorithm, literally: rescan for the best merge until none is left."""
    ids = {p: i for i, p in reversed(list(enumerate(tok.pieces)))}
    toks = []
    for ch in (" " + text) if text else "":
        b = ch.encode()
        toks += [ids[b]] if b in ids else [x + 3 for x in b]
    while True:
        best, best_i = None, None
        for i in range(len(toks) - 1):
            j = ids.get(tok.pieces[toks[i]] + tok.pieces[toks[i + 1]])
            if j is not None and (best is None or tok.scores[j] > tok.scores[best]):
                best, best_i = j, i
        if best is None:
            return [1] + toks
        toks[best_i : best_i + 2] = [best]


def test_tok512_vocabulary(tok512):
    assert (tok512.vocab_size, tok512.bos_id, tok512.eos_id) == (512, 1, 2)
    assert tok512.pieces[3 + ord("A")] == b"<0x41>"


@pytest.mark.parametrize("text", ["Once upon a time", "", "a", "Lily's dog — “Max” — ate 3 cakes!\n\tNaïve 日本"])
def test_encode_matches_reference(tok512, text):
    assert tok512.encode(text) == reference_encode(tok512, text)
    assert tok512.encode(text, bos=False) == reference_encode(tok512, text)[1:]


def test_encode_matches_reference_on_a_story(tok512, sample_text):
    story = sample_text.split("<|endoftext|>")[1].strip()
    assert tok512.encode(story) == reference_encode(tok512, story)


def test_round_trip(tok512, sample_text):
    ids = tok512.encode(sample_text)
    assert ids[0] == 1 and len(ids) < len(sample_text) / 2
    assert tok512.decode(ids) == sample_text
    assert tok512.decode(ids[1:]) == sample_text  # no BOS: the first piece still loses its space


def test_byte_fallback_decodes_to_utf8(tok512):
    ids = tok512.encode("日本")
    assert ids[2:] == [3 + b for b in "日本".encode()]  # after BOS and the dummy-prefix space
    assert tok512.decode(ids) == "日本"
    assert tok512.decode([1, 3 + 0xE2]) == "\ufffd"  # a lone lead byte is replaced, not an error


def test_whole_file_encodes(tok512, tinystories_text):
    ids = tok512.encode(tinystories_text)  # its speed is a benchmark's business, not a timed test's
    assert len(ids) == 100_708


def test_hf_tokenizer_json(tmp_path, sample_text):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    hf = Tokenizer(models.BPE(unk_token=None))
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<s>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    hf.train_from_iterator([sample_text], trainer)
    hf.save(str(tmp_path / "tokenizer.json"))
    tok = load_tokenizer(tmp_path)  # a directory holding tokenizer.json
    assert (tok.bos_id, tok.eos_id, tok.vocab_size) == (0, 1, 400)
    ids = tok.encode("Once upon a time, Lily smiled.")
    assert ids[0] == 0 and 1 not in ids
    assert tok.decode(ids) == "Once upon a time, Lily smiled."
    assert tok.encode("Once", bos=False) == ids[1 : len(tok.encode("Once"))]


def test_missing_or_broken(tmp_path):
    with pytest.raises(UserError, match="nothing.bin"):
        load_tokenizer(tmp_path / "nothing.bin")
    (tmp_path / "bad.bin").write_bytes(b"\x07\0\0\0\0\0\0\0\x50\0\0\0ab")
    with pytest.raises(UserError, match="bad.bin"):
        load_tokenizer(tmp_path / "bad.bin")
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(UserError, match="tokenizer.json"):
        load_tokenizer(tmp_path / "tokenizer.json")
