"""GPT-2 (Radford et al. 2019) from a Hugging Face folder as a dlcli language model checkpoint payload.

The folder is what `save_pretrained` and the Hub hold: config.json, vocab.json + merges.txt (the
byte-level BPE tokenizer), and the weights as model.safetensors or pytorch_model.bin. Neither
transformers nor safetensors is needed: dlcli/convert/safetensors_reader.py reads safetensors
itself, and pytorch_model.bin with `torch.load(weights_only=True)`, which builds tensors and plain
values only, so no code from the file runs.

dlcli's GPT (dlcli/models/gpt.py) is GPT-2's layout under other names. GPT-2's linear layers are
`Conv1D`s, their weights stored (in, out): they are transposed to nn.Linear's (out, in). The
attention masks GPT-2 keeps as buffers (`attn.bias`, `attn.masked_bias`) are left out, and the
output layer is the token embedding (a `lm_head.weight` must equal it). What the GPT class cannot
express (unscaled attention, attention scaled by the inverse layer index, cross-attention, other
activations) is refused. `reorder_and_upcast_attn` only computes the same attention scores in
float32 when training in half precision, so it is accepted.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from dlcli.convert.safetensors_reader import SAFETENSORS, TORCH_BIN, read_safetensors, read_torch_bin, weights_file
from dlcli.errors import DataError

CONFIG, VOCAB, MERGES = "config.json", "vocab.json", "merges.txt"
FOLDER_HINT = (f"give a GPT-2 folder as save_pretrained or the Hub writes it: {CONFIG}, {VOCAB}, {MERGES}, "
               f"and {SAFETENSORS} or {TORCH_BIN}")
# GPT-2's activation_function -> dlcli's (gelu_new is the tanh approximation)
ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu", "relu": "relu"}
# config flags the GPT class cannot follow: name -> (the value it can follow, what the other means)
UNSUPPORTED = {
    "scale_attn_weights": (True, "attention scores not scaled by 1/sqrt(head size)"),
    "scale_attn_by_inverse_layer_idx": (False, "attention scores scaled by 1/(layer index + 1)"),
    "add_cross_attention": (False, "cross-attention layers (an encoder-decoder model)"),
}
# per block: GPT-2's module -> (dlcli's, whether it is a Conv1D with (in, out) weights)
BLOCK = {"ln_1": ("norm1", False), "attn.c_attn": ("attn.qkv", True), "attn.c_proj": ("attn.proj", True),
         "ln_2": ("norm2", False), "mlp.c_fc": ("fc", True), "mlp.c_proj": ("proj", True)}
TOP = {"wte.weight": "token.weight", "wpe.weight": "position.weight", "ln_f.weight": "norm.weight",
       "ln_f.bias": "norm.bias"}
BUFFER = re.compile(r"h\.\d+\.attn\.(bias|masked_bias)")  # causal masks, not weights


def convert_gpt2(paths: list[Path]) -> dict:
    """The payload of a `task: lm`, `model: gpt` checkpoint from one GPT-2 folder."""
    from dlcli.tasks.lm import LMTask

    folder = _folder(paths)
    config = read_config(folder / CONFIG)
    kwargs = model_kwargs(config)
    vocab = read_tokenizer(folder, config)
    weights_file = _weights_file(folder)
    weights = read_safetensors(weights_file) if weights_file.name == SAFETENSORS else read_torch_bin(weights_file)
    state = to_dlcli(weights, kwargs["num_layers"], weights_file)
    recipe, kwargs = _recipe(kwargs, vocab.size)
    check_shapes(state, vocab.size, kwargs, weights_file)
    return {
        "task": "lm",
        "recipe": recipe,
        "model": {"type": "gpt", "kwargs": kwargs},
        **LMTask(vocab).payload(),
        "state_dict": state,
        "metrics": {},
        "converted_from": [CONFIG, VOCAB, MERGES, weights_file.name],
    }


def _folder(paths: list[Path]) -> Path:
    if len(paths) != 1:
        raise DataError(f"convert gpt2 reads one folder, not {len(paths)} paths", FOLDER_HINT)
    folder = Path(paths[0])
    if not folder.is_dir():
        what = "a file" if folder.is_file() else "not found"
        raise DataError(f"{folder.resolve()}: {what}; convert gpt2 reads a folder", FOLDER_HINT)
    for name in (CONFIG, VOCAB, MERGES):
        if not (folder / name).is_file():
            raise DataError(f"{folder}: no {name} (expected {_EXPECTED[name]})", FOLDER_HINT)
    return folder


_EXPECTED = {CONFIG: "the model's configuration: n_embd, n_layer, n_head, n_positions, vocab_size",
             VOCAB: "the tokenizer's token -> id table", MERGES: "the tokenizer's BPE merges, one pair a line"}


# ---------------------------------------------------------------- configuration and tokenizer

def read_config(path: Path) -> dict:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a JSON file: {exc}") from None
    if not isinstance(config, dict):
        raise DataError(f"{path}: not a JSON object")
    model_type = config.get("model_type", "gpt2")
    if model_type != "gpt2":
        raise DataError(f"{path}: model_type {model_type!r} is not GPT-2",
                        "convert gpt2 reads GPT-2 models (gpt2, gpt2-medium, distilgpt2, ...)")
    for key, (follows, meaning) in UNSUPPORTED.items():
        if bool(config.get(key, follows)) != follows:
            raise DataError(f"{path}: {key} {json.dumps(config[key])} ({meaning}) is not what dlcli's GPT computes",
                            "dlcli's GPT is GPT-2's original architecture; this model cannot be converted")
    return config


def model_kwargs(config: dict) -> dict:
    """The GPT builder's keyword arguments for a GPT-2 config."""
    sizes = {}
    for key in ("n_embd", "n_layer", "n_head", "n_positions", "vocab_size"):
        value = config.get(key, config.get("n_ctx") if key == "n_positions" else None)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise DataError(f"{CONFIG}: {key} must be a positive integer, got {json.dumps(value)}")
        sizes[key] = value
    if sizes["n_embd"] % sizes["n_head"]:
        raise DataError(f"{CONFIG}: n_embd {sizes['n_embd']} is not divisible by n_head {sizes['n_head']}")
    activation = config.get("activation_function", "gelu_new")
    if activation not in ACTIVATIONS:
        raise DataError(f"{CONFIG}: activation_function {activation!r} is not one dlcli's GPT has",
                        f"convertible: {', '.join(ACTIVATIONS)}")
    inner = config.get("n_inner")
    if inner is not None and (not isinstance(inner, int) or inner < 1):
        raise DataError(f"{CONFIG}: n_inner must be a positive integer or null, got {json.dumps(inner)}")
    return {"context_length": sizes["n_positions"], "embedding_dim": sizes["n_embd"], "num_layers": sizes["n_layer"],
            "num_heads": sizes["n_head"], "ffn_dim": inner or 4 * sizes["n_embd"],
            "dropout": float(config.get("resid_pdrop", 0.1)), "activation": ACTIVATIONS[activation],
            "layer_norm_eps": float(config.get("layer_norm_epsilon", 1e-5))}


def read_tokenizer(folder: Path, config: dict):
    """vocab.json + merges.txt as a ByteBPEVocab, checked against the config's sizes and special ids."""
    from dlcli.text.byte_bpe import END_OF_TEXT, from_gpt2_files

    try:
        vocab = from_gpt2_files(str(folder / VOCAB), str(folder / MERGES))
    except ValueError as exc:  # no end-of-text token
        raise DataError(f"{folder / VOCAB}: {exc}", "GPT-2's vocabulary ends with <|endoftext|>") from None
    except Exception as exc:  # tokenizers' own errors are plain Exceptions
        raise DataError(f"{folder}: {VOCAB} and {MERGES} are not a BPE tokenizer: {str(exc)[:200]}") from None
    if vocab.size != config["vocab_size"]:
        raise DataError(f"{folder}: the tokenizer ({VOCAB}, {MERGES}) has {vocab.size:,} tokens, {CONFIG}'s "
                        f"vocab_size is {config['vocab_size']:,}",
                        "dlcli's GPT has one output per token: convert a folder whose tokenizer and model agree")
    for key in ("eos_token_id", "bos_token_id"):
        value = config.get(key)
        if isinstance(value, int) and value != vocab.eos_id:
            raise DataError(f"{folder / CONFIG}: {key} is {value}, but {END_OF_TEXT} is token {vocab.eos_id}",
                            f"dlcli starts and ends texts with {END_OF_TEXT}, as GPT-2 does")
    return vocab


def _recipe(kwargs: dict, vocab_size: int) -> tuple[dict, dict]:
    """(the resolved recipe, the model's kwargs with every default) of a GPT with these sizes, as a
    training run would store them: `dlcli evaluate`, `predict` and `generate` read its sections."""
    from dlcli import registry

    recipe = registry.parse_recipe({"task": "lm", "vocab": {"type": "byte_bpe", "vocab_size": vocab_size},
                                    "model": {"type": "gpt", **kwargs}}, CONFIG)
    parts = registry.resolve_recipe(recipe)
    return parts.recipe_dict(recipe), dict(parts.model[1])


# ---------------------------------------------------------------- weights

def _weights_file(folder: Path) -> Path:
    return weights_file(folder, FOLDER_HINT)


def gpt2_names(layers: int) -> dict[str, tuple[str, bool]]:
    """GPT-2's weight names (without "transformer.") -> (dlcli's name, whether to transpose)."""
    names = {gpt2: (ours, False) for gpt2, ours in TOP.items()}
    for i in range(layers):
        for module, (ours, conv) in BLOCK.items():
            names[f"h.{i}.{module}.weight"] = (f"blocks.{i}.{ours}.weight", conv)
            names[f"h.{i}.{module}.bias"] = (f"blocks.{i}.{ours}.bias", False)
    return names


def to_dlcli(weights: dict[str, torch.Tensor], layers: int, path: Path) -> dict[str, torch.Tensor]:
    """GPT-2's state dict in dlcli's names and layouts; refuses missing, unknown or untied weights."""
    names = gpt2_names(layers)
    weights = {k.removeprefix("transformer."): v for k, v in weights.items()}
    head = weights.pop("lm_head.weight", None)
    unknown = sorted(k for k in weights if k not in names and not BUFFER.fullmatch(k))
    if unknown:
        raise DataError(f"{path}: weights GPT-2 ({layers} layers, per {CONFIG}) does not have: "
                        f"{', '.join(unknown)[:300]}")
    missing = [k for k in names if k not in weights]
    if missing:
        raise DataError(f"{path}: {len(missing)} of GPT-2's weights are missing: {', '.join(missing)[:300]}",
                        f"is n_layer in {CONFIG} right, and the file complete?")
    wte = weights["wte.weight"]
    if head is not None and not (head.shape == wte.shape and torch.equal(head, wte)):
        raise DataError(f"{path}: lm_head.weight differs from the token embedding (wte.weight)",
                        "dlcli's GPT ties its output layer to the token embedding, as GPT-2 does")
    return {ours: weights[gpt2].t().contiguous() if conv and weights[gpt2].dim() == 2 else weights[gpt2]
            for gpt2, (ours, conv) in names.items()}


def check_shapes(state: dict[str, torch.Tensor], vocab_size: int, kwargs: dict, path: Path) -> None:
    """Every tensor shaped as the GPT that config.json describes has it."""
    from dlcli.models.gpt import GPT

    with torch.device("meta"):
        own = GPT(vocab_size, **kwargs).state_dict()
    ours_to_gpt2 = {ours: gpt2 for gpt2, (ours, _) in gpt2_names(kwargs["num_layers"]).items()}
    for name, tensor in state.items():
        if tuple(tensor.shape) != tuple(own[name].shape):
            raise DataError(f"{path}: {ours_to_gpt2[name]} does not fit the model {CONFIG} describes: "
                            f"{tuple(tensor.shape)} as dlcli's {name}, which needs {tuple(own[name].shape)}")
