"""YAML recipes -> frozen dataclasses, with strict keys, scalar coercion and `--set` overrides.

PyYAML reads YAML 1.1 (`1e-3` is a string, `no` is False), so every scalar is coerced to the
type the field declares, and every error names the dotted key.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
import os
import types
import typing
from collections.abc import Callable
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


def choice(default: Any, choices: tuple, **kwargs) -> Any:
    """A section field whose value must be one of `choices` (None passes where the type allows it)."""
    return field(default=default, metadata={"choices": choices}, **kwargs)


def data_path(**kwargs) -> Any:
    """A data field naming a file or folder (or a list of them; default None), resolved against the
    data root before a run reads it."""
    if "default_factory" not in kwargs:
        kwargs.setdefault("default", None)
    return field(metadata={"path": True}, **kwargs)


def checkpoint_ref(default: Any = None, **kwargs) -> Any:
    """A data field naming a checkpoint (or shipped model) that a run starts from: loaded by the
    run and handed to the task as `init`."""
    return field(default=default, metadata={"checkpoint": True}, **kwargs)


def bounded(default: Any = dataclasses.MISSING, *, ge: float | None = None, gt: float | None = None,
            le: float | None = None, lt: float | None = None, **kwargs) -> Any:
    """A number field (or list of numbers) held to limits: `bounded(10, ge=1)` refuses 0 and -3
    naming the key (`train.epochs: must be >= 1, got 0`). None passes where the type allows it."""
    if default is not dataclasses.MISSING:
        kwargs["default"] = default
    return field(metadata={"bounds": _limits(ge=ge, gt=gt, le=le, lt=lt)}, **kwargs)


def kwarg_bounds(default: Any, **bounds: dict) -> Any:
    """A component field whose keyword arguments are held to limits, e.g.
    `kwarg_bounds(Component("adam"), lr={"ge": 0})`."""
    return field(default=default, metadata={"kwarg_bounds": {k: _limits(**b) for k, b in bounds.items()}})


def _limits(ge=None, gt=None, le=None, lt=None) -> tuple:
    return tuple((op, v) for op, v in ((">=", ge), (">", gt), ("<=", le), ("<", lt)) if v is not None)


_HOLDS = {">=": lambda x, v: x >= v, ">": lambda x, v: x > v, "<=": lambda x, v: x <= v, "<": lambda x, v: x < v}


def check_bounds(value: Any, limits: tuple, dotted: str, errors: list[str], shown: Any = None) -> None:
    """Append `dotted: must be OP LIMIT, got VALUE` for each number in `value` outside `limits`
    (`shown`: the value as written, when `value` is its coercion)."""
    items = value if isinstance(value, (list, tuple)) else [value]
    for i, item in enumerate(items):
        if item is None or isinstance(item, bool) or not isinstance(item, (int, float)):
            continue
        where = f"{dotted}[{i}]" if isinstance(value, (list, tuple)) else dotted
        if math.isnan(item) or not all(_HOLDS[op](item, v) for op, v in limits):
            rule = " and ".join(f"{op} {v:g}" for op, v in limits)
            errors.append(f"{where}: must be {rule}, got {item if shown is None else shown!r}")


def path_fields(section: Any) -> list[str]:
    return [f.name for f in dataclasses.fields(section) if f.metadata.get("path")]


def checkpoint_fields(section: Any) -> list[str]:
    return [f.name for f in dataclasses.fields(section) if f.metadata.get("checkpoint")]


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = bounded(10, ge=1)
    batch_size: int = bounded(32, ge=1)
    max_steps: int | None = bounded(None, ge=1)
    # lr 0 is allowed (a frozen run writes the initialised model) but warned about: see `recipe_warnings`
    optimizer: Component = kwarg_bounds(Component("adam", {"lr": 1.0e-3}), lr={"ge": 0})
    lr_schedule: Component = Component("constant")
    grad_clip: float | None = bounded(None, gt=0)
    # optimizer steps between dev evaluations, and the last step; default: every epoch; 0: at the end
    eval_every: int | None = bounded(None, ge=0)
    # epochs between resume states; 0: only on Ctrl-C (big models: no 800 MB copies)
    state_every: int = bounded(1, ge=0)
    metric: str | None = None  # dev metric that picks the best model; default: the task's own
    patience: int | None = bounded(None, ge=1)  # evaluations without improvement before stopping; null: never
    ema_decay: float | None = bounded(None, gt=0, lt=1)
    # each layer of a pretrained encoder learns at this factor of the lr of the layer above it, the
    # head at the full lr (layer-wise lr decay, Howard & Ruder 2018; Clark et al. 2020); null: one lr
    layer_lr_decay: float | None = bounded(None, gt=0, le=1)
    deterministic: bool = False


@dataclass(frozen=True)
class Recipe:
    """A whole recipe. `data` and `predict` are the task's own sections (`Task.data_section`,
    `Task.predict_section`); `vocab` is one component, a mapping of them, or None, as the task's
    `vocabs` declares."""

    task: str
    model: Component
    seed: int = 13
    device: str = "auto"  # validated by dlcli.device
    precision: str = choice("fp32", ("fp32", "bf16", "fp16"))
    data: Any = None
    vocab: Any = None
    train: TrainConfig = TrainConfig()
    predict: Any = None

    def to_dict(self) -> dict:
        out = _to_plain(self)
        if self.vocab is None:
            del out["vocab"]
        return out


def recipe_warnings(recipe: Recipe) -> list[str]:
    """What a recipe asks for that is allowed but most likely a mistake."""
    try:
        lr = coerce(recipe.train.optimizer.kwargs.get("lr"), float | None)
    except (TypeError, ValueError):
        lr = None
    if lr == 0:
        return ["train.optimizer.lr is 0: the weights will not change (the checkpoint holds the initial model)"]
    return []


def _to_plain(obj: Any) -> Any:
    if isinstance(obj, Component):
        return obj.to_dict()
    if dataclasses.is_dataclass(obj):
        return {f.name: _to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: _to_plain(v) for k, v in obj.items()}
    return obj


# ---------------------------------------------------------------- loading


def load_recipe(path: str | Path, overrides: list[str], task_of: Callable[[str], Any]) -> Recipe:
    """The recipe file with `--set` overrides applied; `task_of(name)` gives a task's adapter class
    (whose sections the recipe's `data`, `predict` and `vocab` are read as)."""
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
    return parse_recipe(raw, task_of, source=str(path))


def parse_overrides(items: list[str], flag: str) -> dict:
    """Flat KEY=VALUE items as a dict, each value parsed as YAML (`--set top_k=3`)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise RecipeError(f"{flag} {item!r}: expected KEY=VALUE", f"e.g. {flag} batch_size=64")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


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


def parse_recipe(raw: dict, task_of: Callable[[str], Any], source: str = "<recipe>") -> Recipe:
    errors: list[str] = []
    sections: dict = {}
    adapter = None
    if "task" in raw:  # without it, the other sections are still checked (and its absence reported)
        try:
            adapter = task_of(str(raw["task"]))
            sections = {"data": adapter.data_section, "predict": adapter.predict_section}
        except RecipeError as exc:
            raise RecipeError(f"{source}: {exc.message}", exc.hint) from None
    recipe = _build(Recipe, raw, "", errors, sections)
    if recipe is not None and adapter is not None:
        recipe = dataclasses.replace(recipe, vocab=_vocab_components(raw.get("vocab"), adapter.vocabs, errors))
    if errors:
        raise RecipeError(f"{source}: " + "; ".join(errors))
    return recipe


def _vocab_components(raw: Any, names: tuple[str, ...], errors: list[str]) -> Any:
    """`vocab:` as the task declares it: one component (default `word`), none, or one per name."""
    if not names:
        if raw is not None:
            errors.append("vocab: this task builds no vocabulary; remove the section")
        return None
    if names == ("vocab",):
        return _convert(raw if raw is not None else "word", Component, "vocab", errors)
    raw = raw if raw is not None else {}
    if not isinstance(raw, dict):
        errors.append(f"vocab: expected a mapping of {', '.join(names)}, got {raw!r}")
        return None
    for key in raw:
        if key not in names:
            errors.append(unknown_key_message(f"vocab.{key}", str(key), names))
    return {name: _convert(raw.get(name, "word"), Component, f"vocab.{name}", errors) for name in names}


def parse_section(cls: type, raw: dict, name: str) -> Any:
    """One section (e.g. a task's data section) from a plain dict, with the same checks as a whole recipe."""
    errors: list[str] = []
    section = _build(cls, raw, f"{name}.", errors)
    if errors:
        raise RecipeError("; ".join(errors))
    return section


def _build(cls: type, raw: Any, prefix: str, errors: list[str], sections: dict | None = None) -> Any:
    """`cls` from a mapping; `sections` gives the dataclass of fields typed `Any` (a task's own)."""
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
        hint = (sections or {}).get(name, hints[name])
        values[name] = _convert(raw[name], hint, dotted, errors)
        choices = f.metadata.get("choices")
        if choices and values[name] is not None and values[name] not in choices:
            errors.append(f"{dotted}: {values[name]!r} is not one of {', '.join(map(str, choices))}")
        if f.metadata.get("bounds"):
            check_bounds(values[name], f.metadata["bounds"], dotted, errors)
        if f.metadata.get("kwarg_bounds") and isinstance(values[name], Component):
            _check_kwargs(values[name], f.metadata["kwarg_bounds"], dotted, errors)
    for name, section in (sections or {}).items():
        if name not in raw:  # a task's section left out: its defaults
            values[name] = _build(section, {}, f"{prefix}{name}.", errors)
    try:
        return cls(**values)
    except TypeError:
        return None  # missing keys, already reported


def _check_kwargs(component: Component, bounds: dict, dotted: str, errors: list[str]) -> None:
    for key, limits in bounds.items():
        try:
            value = coerce(component.kwargs[key], float)
        except (KeyError, TypeError, ValueError):
            continue  # absent: the builder's default; not a number: binding reports it
        check_bounds(value, limits, f"{dotted}.{key}", errors, shown=component.kwargs[key])


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
