"""`dlcli recipes list|show|validate`: the recipes shipped in recipes/ and checks of any recipe."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from dlcli.errors import RecipeError

app = typer.Typer(
    help="List, show and validate recipes.", no_args_is_help=True,
    epilog="Examples:\n\n  dlcli recipes list\n\n  dlcli recipes show quickstart > my.yaml\n\n"
    "  dlcli recipes validate my.yaml --set train.epochs=3",
)


def recipes_dir() -> Path:
    """$DLCLI_RECIPES_DIR, else the recipes/ of the source checkout dlcli runs from, else ./recipes."""
    env = os.environ.get("DLCLI_RECIPES_DIR")
    if env:
        return Path(env)
    beside = Path(__file__).resolve().parents[2] / "recipes"
    return beside if beside.is_dir() else Path("recipes")


def shipped() -> dict[str, Path]:
    root = recipes_dir()
    return {p.relative_to(root).with_suffix("").as_posix(): p for p in sorted(root.rglob("*.yaml"))}


def resolve_recipe(name: str) -> Path:
    """A recipe path, or a shipped recipe's name such as `classify/textcnn_trec`."""
    path = Path(name)
    if path.exists():
        return path
    found = shipped().get(name.removesuffix(".yaml"))
    if found is None:
        raise RecipeError(f"recipe not found: {path.resolve()}",
                          "pass a YAML file, or a name from `dlcli recipes list`")
    return found


def _summary(path: Path) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


@app.command("list", epilog="Examples:\n\n  dlcli recipes list\n\n  dlcli recipes list | grep textcnn")
def list_command():
    """List shipped recipes: name, then the first line of its header."""
    for name, path in shipped().items():
        print(f"{name:32s} {_summary(path)}")


@app.command("show", epilog="Examples:\n\n  dlcli recipes show quickstart\n\n"
             "  dlcli recipes show classify/textcnn_trec > my.yaml")
def show_command(name: str = typer.Argument(..., help="Shipped recipe name or a path.")):
    """Print a recipe's YAML (copy one to start your own)."""
    print(resolve_recipe(name).read_text(encoding="utf-8"), end="")


@app.command("validate", epilog="Examples:\n\n  dlcli recipes validate my.yaml\n\n"
             "  dlcli recipes validate recipes/**/*.yaml --set train.epochs=1")
def validate_command(
    names: list[str] = typer.Argument(..., help="Recipe files or shipped names."),
    overrides: list[str] = typer.Option([], "--set", help="KEY=VALUE overrides to check too."),
):
    """Parse each recipe and bind every component, as training would; exit 2 on the first error.
    Settings that are allowed but most likely a mistake (a learning rate of 0) are warned about on stderr."""
    import sys

    from dlcli import registry
    from dlcli.recipe import recipe_warnings

    for name in names:
        path = resolve_recipe(name)
        recipe = registry.load_recipe(path, overrides)
        registry.resolve_recipe(recipe)
        for warning in recipe_warnings(recipe):
            print(f"warning: {path}: {warning}", file=sys.stderr)
        print(f"ok {path}")
