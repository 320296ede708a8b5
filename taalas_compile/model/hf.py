"""Hugging Face safetensors checkpoints (single file or sharded), read tensor by tensor."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from taalas_compile.errors import UserError
from taalas_compile.model.args import ModelArgs
from taalas_compile.model.tokenizer import special_ids
from taalas_compile.model.weights import WeightSource, file_fingerprint

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not valid JSON ({e})") from None


def read_config(path: Path) -> dict:
    """A checkpoint's config.json as a dict; missing or not JSON: a one-line UserError."""
    return _read_json(path)


def _is_ignorable(name: str, args: ModelArgs) -> bool:
    """Tensors some exporters add that carry nothing: RoPE tables, a duplicate tied lm_head."""
    return name.endswith("rotary_emb.inv_freq") or (args.tie_embeddings and name == "lm_head.weight")


class HFWeights:
    """A directory (config.json + model.safetensors or a sharded index) or one .safetensors file."""

    def __init__(self, path: str | Path):
        path = Path(path)
        if path.is_dir():
            root = path
            if (root / INDEX).is_file():
                index = _read_json(root / INDEX)
                weight_map = index.get("weight_map")
                if not isinstance(weight_map, dict):
                    raise UserError(f"{root / INDEX}: missing weight_map")
                files = sorted({root / f for f in weight_map.values()})
            elif (root / SINGLE).is_file():
                files = [root / SINGLE]
            else:
                raise UserError(f"{root}: no {SINGLE} or {INDEX}")
        elif path.is_file() and path.suffix == ".safetensors":
            root, files = path.parent, [path]
        else:
            raise UserError(f"{path}: not a directory or .safetensors file")
        config = _read_json(root / "config.json")
        try:
            self.args = ModelArgs.from_hf_config(config)
        except UserError as e:
            raise UserError(f"{root / 'config.json'}: {e}") from None
        self.files = files
        # BOS and EOS ids the checkpoint declares (generation_config.json, then config.json)
        self.bos_id, self.eos_ids = special_ids(root)
        self._where: dict[str, Path] = {}  # tensor name -> file holding it
        self._handles: dict[Path, object] = {}
        shapes = self.args.param_shapes()
        for f in files:
            if not f.is_file():
                raise UserError(f"{f}: no such file (listed in the checkpoint index)")
            try:
                handle = safe_open(str(f), framework="pt")
            except Exception as e:  # noqa: BLE001  safetensors raises its own error types for corrupt headers
                raise UserError(f"{f}: not a readable safetensors file ({e})") from None
            self._handles[f] = handle
            for name in handle.keys():  # noqa: SIM118  a safe_open handle, not a dict
                if name in shapes:
                    shape = tuple(handle.get_slice(name).get_shape())
                    if shape != shapes[name]:
                        raise UserError(f"{f}: tensor {name} has shape {shape}, config implies {shapes[name]}")
                    self._where[name] = f
                elif not _is_ignorable(name, self.args):
                    raise UserError(f"{f}: unexpected tensor {name} for a Llama model")
        missing = [n for n in shapes if n not in self._where]
        if missing:
            raise UserError(f"{root}: checkpoint is missing {len(missing)} tensors: {', '.join(missing[:5])}")

    def names(self) -> list[str]:
        return list(self.args.param_shapes())

    def get(self, name: str) -> torch.Tensor:
        t = self._handles[self._where[name]].get_tensor(name)  # bf16/fp16/fp32 from the memory map
        out = torch.empty(t.shape, dtype=torch.float32)
        return out.copy_(t)

    def release_pages(self) -> None:
        """Unmap the shards and map them again: pages read so far leave this process's resident
        memory (a streamed compile calls it after each layer, so RSS stays one layer's, not the
        checkpoint's)."""
        self._handles = {f: safe_open(str(f), framework="pt") for f in self.files}

    def rows(self, name: str, r0: int, r1: int) -> torch.Tensor:
        t = self._handles[self._where[name]].get_slice(name)[r0:r1]  # only these rows leave the memory map
        out = torch.empty(t.shape, dtype=torch.float32)
        return out.copy_(t)

    def fingerprint(self) -> dict:
        return {"kind": "hf", "files": [file_fingerprint(f) for f in self.files]}

    def __getstate__(self) -> dict:  # worker processes reopen the files themselves
        return {k: v for k, v in self.__dict__.items() if k != "_handles"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._handles = {f: safe_open(str(f), framework="pt") for f in self.files}


def shard_plan(shapes: dict[str, tuple[int, ...]], itemsize: int, shard_bytes: int) -> list[list[str]]:
    """Tensor names per shard, in order, each shard at most `shard_bytes` (a larger tensor alone)."""
    shards: list[list[str]] = [[]]
    size = 0
    for name, shape in shapes.items():
        nbytes = itemsize * int(torch.Size(shape).numel())
        if shards[-1] and size + nbytes > shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(name)
        size += nbytes
    return shards


def save_hf_checkpoint(directory: str | Path, source: WeightSource, shard_bytes: int | None = None,
                       dtype: torch.dtype = torch.float32) -> None:
    """Write config.json and safetensors of `dtype` (float32, or bfloat16 as Llama 3 ships):
    one model.safetensors, or shards of at most `shard_bytes` + index."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(source.args.to_hf_config(), indent=2))
    shapes = source.args.param_shapes()
    if shard_bytes is None:
        save_file({n: source.get(n).to(dtype).contiguous() for n in shapes}, str(directory / SINGLE), metadata={"format": "pt"})
        return
    itemsize = torch.empty(0, dtype=dtype).element_size()
    shards = shard_plan(shapes, itemsize, shard_bytes)
    weight_map = {}
    for k, names in enumerate(shards):
        fname = f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file({n: source.get(n).to(dtype).contiguous() for n in names}, str(directory / fname), metadata={"format": "pt"})
        weight_map.update({n: fname for n in names})
    total = sum(itemsize * int(torch.Size(s).numel()) for s in shapes.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (directory / INDEX).write_text(json.dumps(index, indent=2))
