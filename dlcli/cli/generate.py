"""`dlcli generate MODEL [--prompt TEXT | INPUT]`: text continued by a language model, or
translated (any text to text) by a seq2seq model."""

from __future__ import annotations

import sys

import typer

from dlcli.cli._io import on_error_option, quiet_option, threads_option

EXAMPLES = """Examples:

  dlcli generate runs/gpt_mini_wiki.pt --prompt 'The river' --format text

  dlcli generate runs/gpt_mini_wiki.pt prompts.txt --temperature 0.8 --top-p 0.9 --seed 3 | jq -r .text

  echo 'the company said' | dlcli generate runs/rnn_lm_ptb_small.pt --temperature 0 --max-new-tokens 10

  echo 'How are you?' | dlcli generate runs/transformer_seq2seq_tatoeba_en2fr.pt --beam-size 5 | jq -r .output

  dlcli generate runs/rnn_seq2seq_tatoeba_en2fr.pt sentences.txt --n-best 3 --attention-plot pictures/
"""

FORMATS = ("jsonl", "text")


def generate_command(
    model: str = typer.Argument(..., help="A language model checkpoint (task lm) written by `dlcli train` or "
                                "`dlcli convert gpt2`, or a seq2seq model."),
    input: str = typer.Argument(None, help="Prompts (sentences to translate), one per line ('-' = stdin) "
                                "[default: stdin, unless --prompt is given]."),
    prompt: str = typer.Option(None, "--prompt", "-p", help="One prompt, instead of an input file."),
    beam_size: int = typer.Option(None, "--beam-size", "-b", help="seq2seq: partial outputs kept per sentence; "
                                  "1: greedy [default: the checkpoint's, 5]."),
    n_best: int = typer.Option(None, "--n-best", help="seq2seq: outputs per sentence, best first, in the "
                               "record's \"n_best\" (at most --beam-size) [default: 1]."),
    max_length: int = typer.Option(None, "--max-length", help="seq2seq: output tokens at most [default: 2 x "
                                   "the source's tokens + 10]."),
    length_penalty: float = typer.Option(None, "--length-penalty", help="seq2seq: GNMT's alpha; 0 ranks "
                                         "outputs by log-probability, more favours longer ones [default: 0.6]."),
    attention_plot: str = typer.Option(None, "--attention-plot", help="seq2seq: a folder for one PNG per "
                                       "input of the output's attention over the source (needs matplotlib: "
                                       "pip install 'dlcli[plot]')."),
    max_new_tokens: int = typer.Option(None, "--max-new-tokens", "-n", help="Tokens added at most per prompt "
                                       "[default: the checkpoint's, 64]."),
    temperature: float = typer.Option(None, "--temperature", "-t", help="0: greedy (always the most likely "
                                      "token); higher: more varied [default: the checkpoint's, 1.0]."),
    top_k: int = typer.Option(None, "--top-k", help="Sample among the k most likely tokens only; 0: all "
                              "[default: the checkpoint's, 0]."),
    top_p: float = typer.Option(None, "--top-p", help="Sample among the fewest tokens whose probabilities sum "
                                "to p, in (0, 1]; 1: all [default: the checkpoint's, 1.0]."),
    seed: int = typer.Option(None, "--seed", help="The same seed gives the same text for the same prompt id "
                             "(line number) and settings [default: the checkpoint's, 0]."),
    num_samples: int = typer.Option(None, "--num-samples", help="Continuations per prompt, each a record with "
                                    "\"sample\": k [default: 1]."),
    batch_size: int = typer.Option(None, "--batch-size", help="Prompts (samples) generated together."),
    output_format: str = typer.Option("jsonl", "--format", "-f", help="jsonl: a record per continuation; text: "
                                      "the new text only, a line each (a single --prompt's text appears as it "
                                      "is made)."),
    input_format: str = typer.Option("text", "--input-format", help="text: one prompt per line; jsonl: objects "
                                     "with \"text\" (and optional \"id\")."),
    encoding: str = typer.Option("utf-8", "--encoding", help="Encoding of the input."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N, mps or auto."),
    on_error: str = on_error_option(),
    threads: int = threads_option(),
    quiet: bool = quiet_option(),
):
    """Continue each prompt (a language model) or translate each line (a seq2seq model); one
    JSON object per continuation or line, in input order.

    seq2seq record: {"id", "source", "output", "score", "finish_reason"}: the output of beam
    search, its log-probability in nats, and "eos" or "length" (cut at the maximum length); an
    empty line gives an empty output, a source longer than the model reads is cut ("truncated").

    Language model record: {"id", "prompt", "text", "tokens", "finish_reason"}: the new text, its tokens as the
    model's vocabulary names them (byte-level BPE marks a leading space with "Ġ"), and why it
    stopped: "eos" (the model ended the text), "length" (--max-new-tokens), "context" (the model's
    context length is full). A prompt is read as the start of a text; an empty one asks for a text
    from nothing. A prompt longer than the model's context keeps its end, and the record has
    "truncated": {"length", "kept"} (tokens).
    """
    from dlcli import api
    from dlcli.cli._io import write_predictions
    from dlcli.errors import DataError, RecipeError

    if output_format not in FORMATS:
        raise RecipeError(f"--format: {output_format!r} is not one of {', '.join(FORMATS)}")
    if prompt is not None and input is not None:
        raise RecipeError("give --prompt or an input file, not both")
    options = {"max_new_tokens": max_new_tokens, "temperature": temperature, "top_k": top_k, "top_p": top_p,
               "seed": seed, "num_samples": num_samples, "batch_size": batch_size, "beam_size": beam_size,
               "n_best": n_best, "max_length": max_length, "length_penalty": length_penalty}
    if attention_plot is not None:
        from dlcli.plots import require_matplotlib

        require_matplotlib()
        options["attention_plot"] = attention_plot
    loaded = api.load_model(model, device)
    if loaded.task.command != "dlcli generate":
        raise DataError(f"{model}: model type {loaded.data['model']['type']} (task {loaded.data['task']}) does not "
                        "generate text", f"use {loaded.task.command} with it; dlcli generate takes a left-to-right "
                        "language model (task lm: rnn_lm, gpt) or a seq2seq model")
    text = output_format == "text"
    streamed = text and prompt is not None and (num_samples or 1) == 1

    out = sys.stdout.buffer  # where the records go too, so the two never interleave out of order

    def on_text(piece: str) -> None:
        out.write(piece.encode("utf-8", "backslashreplace"))
        out.flush()

    def render(record: dict) -> str:
        return "\n" if streamed else record.get("text", record.get("output", "")) + "\n"

    def run(predictor, chunks, **given):
        return api.generate(predictor, chunks, on_text if streamed else None, **given)

    if prompt is not None:
        write_predictions(loaded, iter([([1], [prompt])]), options, threads=threads, quiet=quiet,
                          render=render if text else None, run=run)
        return
    from dlcli.cli._io import stream_predictions

    stream_predictions(loaded, input or "-", options, input_format=input_format, encoding=encoding,
                       on_error=on_error, threads=threads, quiet=quiet, render=render if text else None, run=run)
