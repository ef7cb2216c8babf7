"""BERT (Devlin et al. 2019) from a Hugging Face folder as a dlcli `task: mlm` checkpoint payload.

The folder is what `save_pretrained` and the Hub hold: config.json, the tokenizer (tokenizer.json,
or vocab.txt with tokenizer_config.json's casing), and the weights as model.safetensors or
pytorch_model.bin (dlcli/convert/safetensors_reader.py: no code from the file runs). Weight names
come with or without "bert." (BertModel, BertForPreTraining, BertForMaskedLM, a
sentence-transformers folder). dlcli's BERT (dlcli/models/bert.py) is HF's layout under other
names, with query, key and value stacked into one projection. The pretraining heads
(`cls.predictions.*`, `cls.seq_relationship.*`) and the pooler come along when the file has them;
when it does not (a plain BertModel) they are initialised as a new BERT's, and the summary says so.
A fine-tuning head (`classifier.*`, `qa_outputs.*`) is left out, said too.

A sentence-transformers folder (modules.json) also sets `dlcli embed`'s defaults to its pipeline:
its pooling (cls or mean), its Normalize module, its max_seq_length.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from dlcli.convert.safetensors_reader import SAFETENSORS, TORCH_BIN, read_weights, weights_file
from dlcli.errors import DataError

CONFIG = "config.json"
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt")
FOLDER_HINT = (f"give a BERT folder as save_pretrained or the Hub writes it: {CONFIG}, tokenizer.json or vocab.txt, "
               f"and {SAFETENSORS} or {TORCH_BIN}")
# HF's hidden_act -> dlcli's
ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "relu": "relu"}
# config flags dlcli's BERT cannot follow: name -> (the value it can follow, what the other means)
UNSUPPORTED = {
    "position_embedding_type": ("absolute", "relative position embeddings"),
    "is_decoder": (False, "a causal decoder"),
    "add_cross_attention": (False, "cross-attention layers (an encoder-decoder model)"),
}
# per layer: HF's module (under encoder.layer.N.) -> dlcli's (under layers.N.)
LAYER = {"attention.output.dense": "attn.proj", "attention.output.LayerNorm": "norm1", "intermediate.dense": "fc",
         "output.dense": "proj", "output.LayerNorm": "norm2"}
QKV = ("query", "key", "value")
TOP = {"embeddings.word_embeddings": "token", "embeddings.token_type_embeddings": "segment",
       "embeddings.position_embeddings": "position", "embeddings.LayerNorm": "embed_norm"}
POOLER = {"pooler.dense": "pooler"}
HEADS = {"cls.predictions.transform.dense": "mlm_transform", "cls.predictions.transform.LayerNorm": "mlm_norm",
         "cls.seq_relationship": "nsp"}
BUFFERS = re.compile(r"embeddings\.(position_ids|token_type_ids)")
TASK_HEADS = re.compile(r"(classifier|qa_outputs)\.(weight|bias)")


def convert_bert(paths: list[Path]) -> dict:
    """The payload of a `task: mlm`, `model: bert` checkpoint from one BERT folder."""
    from dlcli.tasks.mlm import MLMTask
    from dlcli.text.wordpiece import from_hf_folder

    folder = _folder(paths)
    config = read_config(folder / CONFIG)
    kwargs = model_kwargs(config)
    try:
        vocab, tokenizer_file = from_hf_folder(folder)
    except Exception as exc:  # noqa: BLE001 (tokenizers raises plain Exceptions for a bad file)
        raise DataError(f"{folder}: the tokenizer could not be read: {str(exc)[:200]}", FOLDER_HINT) from None
    if vocab.size != config["vocab_size"]:
        raise DataError(f"{folder}: the tokenizer ({tokenizer_file}) has {vocab.size:,} tokens, {CONFIG}'s vocab_size "
                        f"is {config['vocab_size']:,}",
                        "dlcli's BERT has one embedding row per token: convert a folder whose tokenizer and "
                        "model agree")
    path = weights_file(folder, FOLDER_HINT)
    notes: list[str] = []
    state = to_dlcli(read_weights(path), kwargs, vocab.size, path, notes)
    predict, st_notes = sentence_transformers_defaults(folder, kwargs["max_position_embeddings"])
    notes += st_notes
    recipe, kwargs = _recipe(kwargs, vocab, predict)
    return {
        "task": "mlm",
        "recipe": recipe,
        "model": {"type": "bert", "kwargs": kwargs},
        **MLMTask(vocab).payload(),
        "state_dict": state,
        "metrics": {},
        "converted_from": [CONFIG, tokenizer_file, path.name],
        "notes": notes,
    }


def _folder(paths: list[Path]) -> Path:
    if len(paths) != 1:
        raise DataError(f"convert bert reads one folder, not {len(paths)} paths", FOLDER_HINT)
    folder = Path(paths[0])
    if not folder.is_dir():
        what = "a file" if folder.is_file() else "not found"
        raise DataError(f"{folder.resolve()}: {what}; convert bert reads a folder", FOLDER_HINT)
    if not (folder / CONFIG).is_file():
        raise DataError(f"{folder}: no {CONFIG} (expected the model's configuration: hidden_size, "
                        "num_hidden_layers, num_attention_heads, intermediate_size, vocab_size)", FOLDER_HINT)
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise DataError(f"{folder}: no tokenizer.json or vocab.txt (expected the WordPiece vocabulary)", FOLDER_HINT)
    return folder


# ---------------------------------------------------------------- configuration

def read_config(path: Path) -> dict:
    config = _json(path)
    model_type = config.get("model_type", "bert")
    if model_type != "bert":
        raise DataError(f"{path}: model_type {model_type!r} is not BERT",
                        "convert bert reads BERT encoders (bert-base, MiniLM, sentence-transformers' BERTs, ...)")
    for key, (follows, meaning) in UNSUPPORTED.items():
        if config.get(key, follows) != follows:
            raise DataError(f"{path}: {key} {json.dumps(config[key])} ({meaning}) is not what dlcli's BERT computes",
                            "dlcli's BERT is the original architecture; this model cannot be converted")
    return config


def _json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a JSON file: {exc}") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: not a JSON object")
    return data


def model_kwargs(config: dict) -> dict:
    """The BERT builder's keyword arguments for a HF BertConfig."""
    sizes = {}
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                "max_position_embeddings", "type_vocab_size", "vocab_size"):
        value = config.get(key, 2 if key == "type_vocab_size" else None)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise DataError(f"{CONFIG}: {key} must be a positive integer, got {json.dumps(value)}")
        sizes[key] = value
    if sizes["hidden_size"] % sizes["num_attention_heads"]:
        raise DataError(f"{CONFIG}: hidden_size {sizes['hidden_size']} is not divisible by num_attention_heads "
                        f"{sizes['num_attention_heads']}")
    activation = config.get("hidden_act", "gelu")
    if activation not in ACTIVATIONS:
        raise DataError(f"{CONFIG}: hidden_act {activation!r} is not one dlcli's BERT has",
                        f"convertible: {', '.join(ACTIVATIONS)}")
    return {"hidden_size": sizes["hidden_size"], "num_layers": sizes["num_hidden_layers"],
            "num_heads": sizes["num_attention_heads"], "intermediate_size": sizes["intermediate_size"],
            "max_position_embeddings": sizes["max_position_embeddings"], "type_vocab_size": sizes["type_vocab_size"],
            "dropout": float(config.get("hidden_dropout_prob", 0.1)),
            "attention_dropout": float(config.get("attention_probs_dropout_prob", 0.1)),
            "activation": ACTIVATIONS[activation], "layer_norm_eps": float(config.get("layer_norm_eps", 1e-12))}


def sentence_transformers_defaults(folder: Path, positions: int) -> tuple[dict, list[str]]:
    """(`predict` defaults, notes) from a sentence-transformers folder's modules.json; ({}, []) for another."""
    if not (folder / "modules.json").is_file():
        return {}, []
    try:
        modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
        kinds = [(m["type"].rsplit(".", 1)[-1], m.get("path", "")) for m in modules]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise DataError(f"{folder / 'modules.json'}: not a sentence-transformers module list: {exc}") from None
    predict, notes = {}, []
    for kind, sub in kinds:
        if kind == "Pooling":
            pooling = _json(folder / sub / CONFIG) if (folder / sub / CONFIG).is_file() else {}
            modes = [k.removeprefix("pooling_mode_") for k, on in pooling.items()
                     if k.startswith("pooling_mode_") and on]
            if modes in (["mean_tokens"], ["cls_token"]):
                predict["pool"] = "mean" if modes == ["mean_tokens"] else "cls"
            else:
                notes.append(f"sentence-transformers pooling {modes} is not reproduced: dlcli embed pools cls or mean")
        elif kind == "Normalize":
            predict["normalize"] = True
        elif kind != "Transformer":
            notes.append(f"sentence-transformers module {kind} ({sub}) is not reproduced by dlcli embed")
    if (folder / "sentence_bert_config.json").is_file():
        st_config = _json(folder / "sentence_bert_config.json")
        length = st_config.get("max_seq_length")
        if isinstance(length, int) and 3 <= length:
            predict["max_length"] = min(length, positions)
        if st_config.get("do_lower_case"):
            notes.append("sentence-transformers lowercases the text first (do_lower_case); dlcli embed does not")
    return predict, notes


def _recipe(kwargs: dict, vocab, predict: dict) -> tuple[dict, dict]:
    """(the resolved recipe, the model's kwargs with every default) of a BERT with these sizes, as a
    training run would store them: `dlcli embed` and `dlcli evaluate` read its sections."""
    from dlcli import registry

    recipe = registry.parse_recipe({"task": "mlm", "vocab": {"type": "bert_wordpiece", "vocab_size": vocab.size,
                                                             "lowercase": vocab.lowercase},
                                    "model": {"type": "bert", **kwargs}, "predict": predict}, CONFIG)
    parts = registry.resolve_recipe(recipe)
    return parts.recipe_dict(recipe), dict(parts.model[1])


# ---------------------------------------------------------------- weights

def hf_names(layers: int) -> dict[str, str]:
    """HF's weight names (without "bert.") -> dlcli's, for everything but the stacked q/k/v and the MLM bias."""
    modules = {**TOP, **POOLER, **HEADS}
    for i in range(layers):
        modules.update({f"encoder.layer.{i}.{hf}": f"layers.{i}.{ours}" for hf, ours in LAYER.items()})
    names = {}
    for hf, ours in modules.items():
        for leaf in ("weight", "bias"):
            if not (hf.startswith("embeddings.") and hf != "embeddings.LayerNorm" and leaf == "bias"):
                names[f"{hf}.{leaf}"] = f"{ours}.{leaf}"
    return names


def _hf_name(name: str) -> str:
    name = name.removeprefix("bert.")
    if name.endswith(".gamma") or name.endswith(".beta"):  # BERT's original TensorFlow-converted files
        name = name.rsplit(".", 1)[0] + (".weight" if name.endswith(".gamma") else ".bias")
    return name


def to_dlcli(weights: dict[str, torch.Tensor], kwargs: dict, vocab_size: int, path: Path,
             notes: list[str]) -> dict[str, torch.Tensor]:
    """HF BERT's state dict in dlcli's names and layouts, heads it lacks initialised (and noted)."""
    layers = kwargs["num_layers"]
    weights = {_hf_name(k): v for k, v in weights.items()}
    names = hf_names(layers)
    qkv = {f"encoder.layer.{i}.attention.self.{part}.{leaf}": (i, leaf)
           for i in range(layers) for part in QKV for leaf in ("weight", "bias")}
    extra = {"cls.predictions.bias", "cls.predictions.decoder.weight", "cls.predictions.decoder.bias"}
    dropped = sorted(k for k in weights if TASK_HEADS.fullmatch(k))
    unknown = sorted(k for k in weights if k not in names and k not in qkv and k not in extra
                     and not BUFFERS.fullmatch(k) and not TASK_HEADS.fullmatch(k))
    if unknown:
        raise DataError(f"{path}: weights BERT ({layers} layers, per {CONFIG}) does not have: "
                        f"{', '.join(unknown)[:300]}")
    optional = [k for k in names if k.startswith(("pooler.", "cls."))]
    missing = [k for k in [*names, *qkv] if k not in weights and k not in optional]
    if missing:
        raise DataError(f"{path}: {len(missing)} of BERT's weights are missing: {', '.join(missing)[:300]}",
                        f"is num_hidden_layers in {CONFIG} right, and the file complete?")
    token = weights["embeddings.word_embeddings.weight"]
    decoder = weights.get("cls.predictions.decoder.weight")
    if decoder is not None and not (decoder.shape == token.shape and torch.equal(decoder, token)):
        raise DataError(f"{path}: cls.predictions.decoder.weight differs from the token embedding",
                        "dlcli's BERT ties its masked-LM output layer to the token embedding, as BERT does")
    state = {ours: weights[hf].float() for hf, ours in names.items() if hf in weights}
    for i in range(layers):
        for leaf in ("weight", "bias"):
            parts = [weights[f"encoder.layer.{i}.attention.self.{p}.{leaf}"].float() for p in QKV]
            state[f"layers.{i}.attn.qkv.{leaf}"] = torch.cat(parts, 0)
    bias = weights.get("cls.predictions.bias", weights.get("cls.predictions.decoder.bias"))
    if bias is not None:
        state["mlm_bias"] = bias.float()
    _complete(state, kwargs, vocab_size, path, notes)
    if dropped:
        notes.append(f"left out the fine-tuning head {', '.join(dropped)}: dlcli's BERT carries only the "
                     "pretraining heads")
    return state


def _complete(state: dict[str, torch.Tensor], kwargs: dict, vocab_size: int, path: Path, notes: list[str]) -> None:
    """Check every tensor's shape against the BERT config.json describes, and fill in the pooler
    and pretraining heads the file lacks from a new BERT's initialisation (seed 0)."""
    from dlcli.models.bert import BERT

    with torch.device("meta"):
        own = BERT(vocab_size, **kwargs).state_dict()
    for name, tensor in state.items():
        if tuple(tensor.shape) != tuple(own[name].shape):
            raise DataError(f"{path}: a tensor does not fit the model {CONFIG} describes: {tuple(tensor.shape)} "
                            f"as dlcli's {name}, which needs {tuple(own[name].shape)}")
    absent = [name for name in own if name not in state]
    if not absent:
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        fresh = BERT(vocab_size, **{**kwargs, "num_layers": 1}).state_dict()  # the heads do not depend on depth
    for name in absent:
        state[name] = fresh[name]
    heads = sorted({name.split(".")[0] for name in absent})
    notes.append(f"initialised (not in {path.name}): {', '.join(heads)}; the encoder's weights are the file's, "
                 "so dlcli embed gives its vectors, while masked-LM and next-sentence scores need pretraining")
