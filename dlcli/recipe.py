"""YAML recipes -> frozen dataclasses, with strict keys, scalar coercion and `--set` overrides.

PyYAML reads YAML 1.1 (`1e-3` is a string, `no` is False), so every scalar is coerced to the
type the field declares, and every error names the dotted key.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

from dlcli.errors import DataError, RecipeError


@dataclass(frozen=True)
class Component:
    """Anything pluggable: a registered `type` name plus the keyword arguments of its builder."""

    type: str
    kwargs: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"type": self.type, **self.kwargs}


@dataclass(frozen=True)
class DataConfig:
    train: str | None = None
    dev: str | None = None
    # classify: tsv | csv | jsonl | fasttext; tag: conll | segmented | word_tag; detect_faces: crops | jsonl | wider
    format: str = "tsv"
    label_column: int = 0
    text_column: int = 1
    header: bool = False
    text_field: str = "text"
    label_field: str = "label"
    encoding: str = "utf-8"
    multi_label: bool = False
    max_length: int | None = None  # classify: longer texts are truncated; tag: cut into pieces
    vectors: str | None = None  # pretrained word vectors that initialise the word embedding
    vectors_format: str = "auto"  # auto | word2vec | word2vec_binary | glove
    # tagging (see dlcli/text/tagging.py)
    token_column: int = 0
    tag_column: int = -1  # negative: counted from the last column
    feature_columns: list[int] = field(default_factory=list)  # extra input columns, e.g. POS
    column_separator: str | None = None  # default: any whitespace
    tag_scheme: str = "bio"  # the files' scheme: bio | iob1 | bioes | bmes | none (per-token labels)
    train_scheme: str | None = None  # re-tag to this scheme for training, e.g. iob1 -> bioes
    bigrams: bool = False  # add each token's bigram with its right neighbour as a feature
    feature_min_freq: int = 1
    # face detection (see dlcli/tasks/detect_faces.py)
    stage: str | None = None  # the net a recipe trains: pnet | rnet | onet
    init: str | None = None  # a detector checkpoint (or shipped name) whose nets this run starts from
    extra_train: list[str] = field(default_factory=list)  # more crop lists, resized to the stage's input
    recrop: int = 0  # windows tried around the face of each crop at least twice the stage's size
    backgrounds: str | None = None  # a folder of face-free photos: random negative crops from each
    background_negatives: int = 30  # crops per background photo
    dev_fraction: float = 0.0  # without data.dev: hold out this share of the training samples
    augment: bool = True  # random mirror images and colour jitter while training
    cache_dir: str | None = None  # samples made from annotated photos; default ~/.cache/dlcli/samples


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 32
    max_steps: int | None = None
    optimizer: Component = Component("adam", {"lr": 1.0e-3})
    lr_schedule: Component = Component("constant")
    grad_clip: float | None = None
    eval_every: int | None = None  # optimizer steps between dev evaluations; default: every epoch; 0: at the end
    state_every: int = 1  # epochs between resume states; 0: only on Ctrl-C (big models: no 800 MB copies)
    metric: str | None = None  # dev metric that picks the best model; default: the task's own
    patience: int | None = None  # evaluations without improvement before stopping
    ema_decay: float | None = None
    deterministic: bool = False


@dataclass(frozen=True)
class PredictConfig:
    batch_size: int = 256
    top_k: int = 1
    threshold: float | None = None


@dataclass(frozen=True)
class Recipe:
    task: str
    model: Component
    seed: int = 13
    device: str = "auto"
    precision: str = "fp32"  # fp32 | bf16 | fp16
    data: DataConfig = DataConfig()
    vocab: Component = Component("word")
    train: TrainConfig = TrainConfig()
    predict: PredictConfig = PredictConfig()

    def to_dict(self) -> dict:
        return _to_plain(self)


CHOICES = {
    "device": None,  # validated by dlcli.device
    "precision": ("fp32", "bf16", "fp16"),
    "data.format": ("tsv", "csv", "jsonl", "fasttext", "conll", "segmented", "word_tag", "crops", "wider"),
    "data.tag_scheme": ("bio", "iob1", "bioes", "bmes", "none"),
    "data.vectors_format": ("auto", "word2vec", "word2vec_binary", "glove"),
}


def _to_plain(obj: Any) -> Any:
    if isinstance(obj, Component):
        return obj.to_dict()
    if dataclasses.is_dataclass(obj):
        return {f.name: _to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    return obj


# ---------------------------------------------------------------- loading


def load_recipe(path: str | Path, overrides: list[str] = ()) -> Recipe:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError(
            f"recipe not found: {path.resolve()}", "list the shipped ones with `dlcli recipes list`"
        ) from None
    except (UnicodeDecodeError, IsADirectoryError) as exc:
        raise RecipeError(f"{path}: cannot read recipe: {exc}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise RecipeError(f"{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: a recipe must be a mapping of keys (task, model, data, ...)")
    apply_overrides(raw, overrides)
    return parse_recipe(raw, source=str(path))


def apply_overrides(raw: dict, overrides: list[str]) -> None:
    """Apply `key.sub=value` overrides in place; the value is parsed as YAML."""
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise RecipeError(f"--set {item!r}: expected KEY=VALUE", "e.g. --set train.epochs=5")
        parts = key.strip().split(".")
        node = raw
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if isinstance(child, str) and _is_component_key(parts[: i + 1]):
                child = {"type": child}  # `optimizer: adam` shorthand
            if child is None:
                child = {}
            if not isinstance(child, dict):
                raise RecipeError(f"--set {key}: {'.'.join(parts[: i + 1])} is not a section")
            node[part] = child
            node = child
        try:
            node[parts[-1]] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError:
            node[parts[-1]] = value


def _is_component_key(parts: list[str]) -> bool:
    return parts in (["model"], ["vocab"], ["train", "optimizer"], ["train", "lr_schedule"])


def parse_recipe(raw: dict, source: str = "<recipe>") -> Recipe:
    errors: list[str] = []
    recipe = _build(Recipe, raw, "", errors)
    if not errors:
        for key, choices in CHOICES.items():
            value = _lookup(recipe, key)
            if choices and value not in choices:
                errors.append(f"{key}: {value!r} is not one of {', '.join(choices)}")
    if errors:
        raise RecipeError(f"{source}: " + "; ".join(errors))
    return recipe


def parse_section(cls: type, raw: dict, name: str) -> Any:
    """One section (e.g. DataConfig) from a plain dict, with the same checks as a whole recipe."""
    errors: list[str] = []
    section = _build(cls, raw, f"{name}.", errors)
    if errors:
        raise RecipeError("; ".join(errors))
    return section


def _lookup(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _build(cls: type, raw: Any, prefix: str, errors: list[str]) -> Any:
    if not isinstance(raw, dict):
        errors.append(f"{prefix.rstrip('.') or 'recipe'}: expected a mapping, got {raw!r}")
        return None
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in raw if k not in fields]
    for key in unknown:
        errors.append(unknown_key_message(f"{prefix}{key}", str(key), fields))
    values = {}
    for name, f in fields.items():
        dotted = f"{prefix}{name}"
        if name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                errors.append(f"{dotted}: required key is missing")
            continue
        values[name] = _convert(raw[name], hints[name], dotted, errors)
    try:
        return cls(**values)
    except TypeError:
        return None  # missing keys, already reported


def _convert(value: Any, hint: Any, dotted: str, errors: list[str]) -> Any:
    if hint is Component:
        if isinstance(value, str):
            return Component(value)
        if not isinstance(value, dict) or "type" not in value:
            errors.append(f"{dotted}: expected a mapping with a `type` key, got {value!r}")
            return None
        rest = {k: v for k, v in value.items() if k != "type"}
        return Component(str(value["type"]), rest)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value if value is not None else {}, f"{dotted}.", errors)
    try:
        return coerce(value, hint)
    except (TypeError, ValueError) as exc:
        errors.append(f"{dotted}: {exc}")
        return None


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def coerce(value: Any, hint: Any) -> Any:
    """Coerce a YAML scalar to `hint` (int, float, bool, str, Optional[...], list[...])."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        last: Exception | None = None
        for arg in args:
            try:
                return coerce(value, arg)
            except (TypeError, ValueError) as exc:
                last = exc
        raise last or ValueError(f"cannot use {value!r}")
    if origin in (list, tuple):
        (item,) = typing.get_args(hint)[:1] or (Any,)
        if not isinstance(value, (list, tuple)):
            value = [value]
        return [coerce(v, item) for v in value]
    if hint is Any or hint is None:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, str)) and str(value).strip().lower() in _TRUE | _FALSE:
            return str(value).strip().lower() in _TRUE
        raise ValueError(f"expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, bool):
            raise ValueError(f"expected an integer, got {value!r}")
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            try:
                number = float(value.replace("_", ""))
            except ValueError:
                number = None
            if number is not None and number.is_integer():
                return int(number)
        raise ValueError(f"expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, bool):
            raise ValueError(f"expected a number, got {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.replace("_", ""))
            except ValueError:
                pass
        raise ValueError(f"expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ValueError(f"expected a string, got {value!r}")
    if hint is dict:
        if isinstance(value, dict):
            return value
        raise ValueError(f"expected a mapping, got {value!r}")
    return value


def unknown_key_message(dotted: str, key: str, known: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(sorted(known))})"
    return f"{dotted}: unknown key{hint}"


# ---------------------------------------------------------------- builder arguments


def bind_kwargs(fn: Any, kwargs: dict, dotted: str, skip: int = 0) -> dict:
    """Check `kwargs` against the keyword parameters of `fn` (after `skip` positional ones).

    Returns the kwargs coerced to each parameter's annotation (or its default's type) with all
    defaults filled in. Every unknown or missing key is reported at once.
    """
    params = list(inspect.signature(fn).parameters.values())[skip:]
    params = [p for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    try:
        hints = typing.get_type_hints(fn.__init__ if inspect.isclass(fn) else fn)
    except Exception:  # torch classes carry annotations that cannot always be evaluated
        hints = {}
    by_name = {p.name: p for p in params}
    errors = [unknown_key_message(f"{dotted}.{k}", k, by_name) for k in kwargs if k not in by_name]
    out = {}
    for name, p in by_name.items():
        if name in kwargs:
            hint = hints.get(name)
            if hint is None and p.default not in (p.empty, None):
                hint = type(p.default)
            try:
                out[name] = coerce(kwargs[name], hint) if hint else kwargs[name]
            except (TypeError, ValueError) as exc:
                errors.append(f"{dotted}.{name}: {exc}")
        elif p.default is p.empty:
            errors.append(f"{dotted}.{name}: required key is missing")
        else:
            out[name] = p.default
    if errors:
        raise RecipeError("; ".join(errors))
    return out


# ---------------------------------------------------------------- paths


def data_root(data_dir: str | None = None) -> Path:
    return Path(data_dir or os.environ.get("DLCLI_DATA_DIR") or "data")


def resolve_data_path(name: str, root: Path, recipe_dir: Path | None = None) -> Path:
    """`./x` and `../x` are relative to the recipe file; other relative names to the data root."""
    path = Path(name).expanduser()
    if path.is_absolute():
        resolved = path
    elif recipe_dir is not None and name.startswith(("./", "../")):
        resolved = recipe_dir / path
    else:
        resolved = root / path
    if not resolved.exists():
        raise DataError(
            f"data file not found: {resolved.resolve()}",
            "set the data root with --data-dir or DLCLI_DATA_DIR; data/README.md says where "
            "each dataset comes from and how to lay it out",
        )
    return resolved
