"""The Typer app and the one place where errors become exit codes (see DESIGN.md §3)."""

from __future__ import annotations

import os
import signal
import sys
from importlib import import_module

import typer

from dlcli.cli import (
    classify,
    convert,
    cross_validate,
    detect_faces,
    embed,
    evaluate,
    generate,
    info,
    predict,
    recipes,
    tag,
    train,
)
from dlcli.errors import DlcliError

app = typer.Typer(
    name="dlcli",
    help="Deep learning for NLP and faces from the command line: train from YAML recipes, "
    "predict in shell pipelines (JSON Lines on stdout, messages on stderr).",
    no_args_is_help=True,
    add_completion=False,
    epilog="Examples:\n\n  dlcli train recipes/quickstart.yaml --out runs/quickstart.pt\n\n"
    "  echo 'who won the match ?' | dlcli classify runs/quickstart.pt | jq .label\n\n"
    "  dlcli evaluate runs/quickstart.pt data/samples/quickstart/dev.tsv | jq .accuracy",
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("train", epilog=train.EXAMPLES)(train.train_command)
app.command("cross-validate", epilog=cross_validate.EXAMPLES)(cross_validate.cross_validate_command)
app.command("classify", epilog=classify.EXAMPLES)(classify.classify_command)
app.command("tag", epilog=tag.EXAMPLES)(tag.tag_command)
app.command("embed", epilog=embed.EXAMPLES)(embed.embed_command)
app.command("detect-faces", epilog=detect_faces.EXAMPLES)(detect_faces.detect_faces_command)
app.command("generate", epilog=generate.EXAMPLES)(generate.generate_command)
app.command("predict", epilog=predict.EXAMPLES)(predict.predict_command)
app.command("evaluate", epilog=evaluate.EXAMPLES)(evaluate.evaluate_command)
app.command("info", epilog=info.EXAMPLES)(info.info_command)
app.command("convert", epilog=convert.EXAMPLES)(convert.convert_command)
app.add_typer(recipes.app, name="recipes")

# Typer >= 0.29 runs on its own vendored copy of click (older ones on click itself): take the
# exception classes from wherever typer's own come from.
_click_exceptions = import_module(typer.BadParameter.__module__)
_USAGE_ERRORS = (_click_exceptions.ClickException,)
_EXITS = (typer.Exit,)
_ABORTS = (typer.Abort, KeyboardInterrupt)


def _print_version(value: bool) -> None:
    if value:
        from dlcli import __version__

        print(__version__)
        raise typer.Exit()


# --version is eager: it must run while parsing, before the group asks for a command.
@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                       help="Print the version and exit.")):
    pass


def _fail(message: str, hint: str | None, code: int) -> int:
    print(f"dlcli: error: {message}", file=sys.stderr)
    if hint:
        print(f"hint: {hint}", file=sys.stderr)
    return code


def _usage_error(exc) -> int:
    """The command-line library's errors in dlcli's own format, with the help to read as the hint.
    `dlcli` or `dlcli recipes` alone still print their help, as the library would."""
    if type(exc).__name__ == "NoArgsIsHelpError":
        exc.show()
        return exc.exit_code
    ctx = getattr(exc, "ctx", None)
    command = ctx.command_path if ctx is not None else "dlcli"
    message = exc.format_message().rstrip(".")
    return _fail(message[:1].lower() + message[1:], f"see '{command} --help'", exc.exit_code)


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code: 0 ok, 1 runtime/data failure, 2 usage, 130 interrupted."""
    debug = bool(os.environ.get("DLCLI_DEBUG"))
    try:
        result = app(args=argv, prog_name="dlcli", standalone_mode=False)
        if result == 130:  # Typer catches Ctrl-C (KeyboardInterrupt) itself and returns 130
            print("dlcli: interrupted", file=sys.stderr)
        return result if isinstance(result, int) else 0
    except DlcliError as exc:
        if debug:
            raise
        return _fail(exc.message, exc.hint, exc.exit_code)
    except _EXITS as exc:
        return exc.exit_code
    except _USAGE_ERRORS as exc:
        return _usage_error(exc)
    except _ABORTS:
        print("dlcli: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # disk full, permission denied, ...
        if debug:
            raise
        where = f": {exc.filename}" if exc.filename else ""
        return _fail(f"{exc.strerror or exc}{where}", None, 1)
    except Exception as exc:  # a bug: say so briefly, show the traceback on request
        if debug:
            raise
        return _fail(f"internal error: {type(exc).__name__}: {exc}",
                     "rerun with DLCLI_DEBUG=1 for the traceback, and please report it", 1)


def main() -> None:
    # A closed pipe (`dlcli classify ... | head -1`) ends the process quietly, with the usual
    # 141 status, as it does for any Unix filter.
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(run())
