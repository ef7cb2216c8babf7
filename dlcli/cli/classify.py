"""`dlcli classify MODEL [INPUT]`."""

from __future__ import annotations

import typer

from dlcli.cli._io import on_error_option, quiet_option, threads_option

EXAMPLES = """Examples:

  printf 'What is the capital of France ?\\n' | dlcli classify runs/textcnn_trec.pt

  dlcli classify model.pt questions.txt --top-k 3 | jq -r .label

  dlcli classify tags.pt docs.jsonl --input-format jsonl --threshold 0.3

  echo 'a gorgeous , witty film' | dlcli classify runs/attn_lstm_sst2.pt --explain | jq -c .attention
"""


def classify_command(
    model: str = typer.Argument(..., help="Checkpoint written by `dlcli train`."),
    input: str = typer.Argument("-", help="Text file, one text per line ('-' = stdin)."),
    top_k: int = typer.Option(None, "--top-k", "-k", min=1,
                              help="Labels listed per text [default: the checkpoint's, 1]."),
    threshold: float = typer.Option(None, "--threshold", help="Also list every label scoring >= this "
                                    "(multi-label models default to 0.5)."),
    batch_size: int = typer.Option(None, "--batch-size", min=1, help="Texts per forward pass."),
    explain: bool = typer.Option(False, "--explain", help="Add \"attention\": [{\"token\", \"text\", "
                                 "\"char_start\", \"char_end\", \"weight\"}], the model's weight on each token "
                                 "(attention models such as attn_lstm): the token as the model read it, and "
                                 "line[char_start:char_end] == text, as written."),
    tokenize: str = typer.Option(None, "--tokenize", help="auto: raw text, tokenized the way the model's "
                                 "training text was (punctuation and clitics such as n't split off, unless the "
                                 "vocabulary knows the word whole); whitespace: the text is already tokenized "
                                 "[default: the checkpoint's, auto]. The model's own rules (lowercasing) apply "
                                 "in both."),
    input_format: str = typer.Option("text", "--input-format", help="text: one text per line; jsonl: "
                                     "objects with \"text\" (and optional \"id\")."),
    encoding: str = typer.Option("utf-8", "--encoding", help="Encoding of the input."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N, mps or auto."),
    on_error: str = on_error_option(),
    threads: int = threads_option(),
    quiet: bool = quiet_option(),
):
    """Classify texts; one JSON object per input line, in input order.

    Record: {"id", "label", "score", "top_k": [{"label", "score"}]}, plus "labels" (every label
    scoring >= the threshold) when a threshold applies. "id" is the line number, or the "id"
    field of a JSON Lines input.

    Long texts: a FastText model averages the whole text, however long. Any other model reads at
    most 2048 ids at once (a transformer: its positions); a longer text is scored in even pieces
    whose probabilities are averaged, weighted by length, and its record has "pieces": N. When the
    recipe set data.max_length, a longer text is cut to it, as in training, and its record has
    "truncated": {"length", "kept"} (in ids: words, characters or subwords).
    """
    from dlcli import api
    from dlcli.cli._io import stream_predictions

    options = {"top_k": top_k, "threshold": threshold, "batch_size": batch_size, "explain": explain or None,
               "tokenize": tokenize}
    # FastText on the CPU predicts without torch (~1.5 s sooner) unless an option needs the torch model
    predictor = api.load_predictor(model, device, {k for k, v in options.items() if v is not None})
    api.expect_task(predictor, "classify", "dlcli classify")
    stream_predictions(predictor, input, options, input_format=input_format, encoding=encoding,
                       on_error=on_error, threads=threads, quiet=quiet)
