"""`dlcli tag [MODEL] [INPUT]`."""

from __future__ import annotations

from pathlib import Path

import typer

from dlcli.cli._io import on_error_option, quiet_option, threads_option

DEFAULT_MODEL = "en-ner"

EXAMPLES = """Examples:

  echo 'Barack Obama met Vladimir Putin in Moscow and discussed Gazprom.' | dlcli tag | jq -c .spans

  dlcli tag --tokenize whitespace --tokens conll_tokens.txt | jq -c .token_offsets

  dlcli tag --model zh-seg --format text news.txt

  dlcli tag --model zh-seg --format text news.txt | dlcli tag --model zh-pos --format text

  dlcli tag runs/bilstm_crf_conll2003_en.pt sentences.txt --format conll
"""


def tag_command(
    args: list[str] = typer.Argument(None, metavar="[MODEL] [INPUT]",
                                     help="Checkpoint (or shipped model name) and input file ('-' = stdin). "
                                     "With one argument: a .pt file or a shipped model name is the model, "
                                     "anything else the input."),
    model: str = typer.Option(None, "--model", "-m", help="Model to use [default: en-ner, shipped]. "
                              "Shipped: en-ner, zh-ner, zh-seg, zh-pos."),
    output_format: str = typer.Option("jsonl", "--format", "-f", help="jsonl: one record per line; conll: "
                                      "token<TAB>tag lines, a blank line after each sentence; text: one line "
                                      "per input line, segmented words for a segmenter, token/TAG otherwise."),
    tag_scheme: str = typer.Option(None, "--tag-scheme", help="Write tags in this scheme (bio, iob1, bioes, "
                                   "bmes) instead of the model's own."),
    batch_size: int = typer.Option(None, "--batch-size", min=1, help="Sentences per forward pass."),
    n_best: int = typer.Option(None, "--n-best", min=1, help="Also list the N most probable tag sequences "
                               "(CRF models), as \"n_best\": [{\"tags\", \"probability\"}]."),
    tokenize: str = typer.Option(None, "--tokenize", help="auto: raw text, tokenized the way the model's "
                                 "training data was (punctuation and clitics such as n't split off; numbers, "
                                 "URLs, e-mail addresses, abbreviations kept whole); whitespace: the input is "
                                 "already tokenized, split on whitespace only [default: the checkpoint's, auto]. "
                                 "Character-level models always take every non-space character."),
    tokens: bool = typer.Option(False, "--tokens", help="Add \"token_offsets\": [[char_start, char_end], ...], "
                                "one per token, so that line[char_start:char_end] is the token."),
    input_format: str = typer.Option("text", "--input-format", help="text: one sentence per line; jsonl: "
                                     "objects with \"text\" (and optional \"id\")."),
    encoding: str = typer.Option("utf-8", "--encoding", help="Encoding of the input."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N, mps or auto."),
    on_error: str = on_error_option(),
    threads: int = threads_option(),
    quiet: bool = quiet_option(),
):
    """Tag sentences (NER, POS, word segmentation), one sentence per input line, in input order.

    Word-level models tokenize each line as their training data was tokenized (--tokenize auto)
    or split it on whitespace (--tokenize whitespace); character-level (Chinese) models take every
    non-space character as a token. Long sentences are tagged in pieces of at most the model's
    data.max_length tokens (256 where the checkpoint sets none; zh-seg, zh-ner: 150; zh-pos: 100),
    cut after punctuation where possible, and joined again: no token is dropped, and time and
    memory grow linearly with a line however long it is. With --n-best, a cut sentence's
    alternatives combine its pieces' own. A blank line gives an empty record. A bert tagger counts
    WordPieces: a line of more than its positions hold is tagged in windows of whole words, and its
    record says so.

    Record: {"id", "tokens", "tags", "spans": [{"start", "end", "label", "text", "char_start",
    "char_end"}]}: start/end count tokens, char_start/char_end characters of the input line (after
    decoding, without its line ending), both end exclusive, and "text" is
    line[char_start:char_end], as written (no spans for per-token labels such as POS). "id" is
    the line number, or the "id" field of a JSON Lines input. With --tokens, "token_offsets":
    [[char_start, char_end], ...] beside "tokens"; with --n-best, "n_best" lists the best
    whole-sentence alternatives. A bert tagger's line tagged in windows has "truncated":
    {"length": its WordPieces, "window": the most read at once, "windows": how many}.
    """
    from dlcli import api
    from dlcli.cli._io import stream_predictions
    from dlcli.errors import RecipeError

    if output_format not in ("jsonl", "conll", "text"):
        raise RecipeError(f"--format: {output_format!r} is not jsonl, conll or text")
    model, input = _split_arguments(list(args or []), model)
    loaded = api.load_model(model, device)
    api.expect_task(loaded, "tag", "dlcli tag")
    if tag_scheme is not None:
        if tag_scheme not in ("bio", "iob1", "bioes", "bmes") or loaded.task.scheme == "none":
            raise RecipeError(f"--tag-scheme: cannot write {loaded.task.scheme} tags as {tag_scheme!r}",
                              "choose bio, iob1, bioes or bmes, for a model with span tags")
    scheme = loaded.task.scheme
    stream_predictions(loaded, input, {"batch_size": batch_size, "n_best": n_best, "tokenize": tokenize,
                                          "token_offsets": tokens or None}, input_format=input_format,
                       encoding=encoding, on_error=on_error, threads=threads, quiet=quiet,
                       render=_renderer(output_format, loaded.task),
                       transform=None if tag_scheme is None else lambda records: _retag(records, scheme, tag_scheme))


def _split_arguments(args: list[str], model: str | None) -> tuple[str, str]:
    from dlcli.errors import RecipeError

    limit = 1 if model else 2
    if len(args) > limit:
        raise RecipeError(f"expected at most {limit} positional argument(s), got {len(args)}",
                          "dlcli tag [MODEL] [INPUT], or dlcli tag --model NAME [INPUT]")
    if model:
        return model, (args[0] if args else "-")
    if len(args) == 2:
        return args[0], args[1]
    if len(args) == 1 and _looks_like_model(args[0]):
        return args[0], "-"
    return DEFAULT_MODEL, (args[0] if args else "-")


def _looks_like_model(arg: str) -> bool:
    from dlcli.checkpoint import PRETRAINED_DIR, is_checkpoint

    if (PRETRAINED_DIR / f"{arg}.pt").exists() or arg.endswith(".pt"):
        return True
    return Path(arg).is_file() and is_checkpoint(arg)


def _retag(records: list[dict], source: str, target: str) -> None:
    from dlcli.text.tagging import convert_scheme

    for record in records:
        if "error" in record:
            continue
        record["tags"] = convert_scheme(record["tags"], source, target)
        for alternative in record.get("n_best", ()):
            alternative["tags"] = convert_scheme(alternative["tags"], source, target)


def _renderer(output_format: str, task):
    from dlcli.text.tagging import join_spans

    if output_format == "jsonl":
        return None
    if output_format == "conll":
        return lambda r: "".join(f"{t}\t{g}\n" for t, g in zip(r["tokens"], r["tags"])) + "\n"
    if task.is_segmenter:
        sep = "" if task.level == "char" else " "
        return lambda r: " ".join(join_spans(r["tokens"], r["tags"], sep)) + "\n"
    return lambda r: " ".join(f"{t}/{g}" for t, g in zip(r["tokens"], r["tags"])) + "\n"
