"""`dlcli evaluate MODEL DATA`."""

from __future__ import annotations

import typer

from dlcli.cli._io import threads_option

EXAMPLES = """Examples:

  dlcli evaluate runs/textcnn_trec.pt ../shared/datasets/trec/dev.tsv | jq .accuracy

  dlcli evaluate model.pt reviews.csv --format csv --header --label-column 1 --text-column 0

  dlcli evaluate en-ner eng.testb --tag-column 3 --tag-scheme iob1 | jq '.f1, .per_type.PER.f1'

  dlcli evaluate mtcnn.pt faces_dev/annotations.jsonl --iou 0.3 | jq '.ap, .recall'
"""


def evaluate_command(
    model: str = typer.Argument(..., help="Checkpoint written by `dlcli train`."),
    data: str = typer.Argument(..., help="Labelled file, read with the checkpoint's data options."),
    format: str = typer.Option(None, "--format", help="tsv, csv, jsonl, fasttext; taggers: conll, segmented, "
                               "word_tag."),
    label_column: int = typer.Option(None, "--label-column", min=0),
    text_column: int = typer.Option(None, "--text-column", min=0),
    header: bool = typer.Option(None, "--header/--no-header", help="Skip a header line (tsv/csv)."),
    token_column: int = typer.Option(None, "--token-column", help="Taggers, conll format: the token column."),
    tag_column: int = typer.Option(None, "--tag-column", help="Taggers, conll format: the tag column "
                                   "(negative: from the end)."),
    tag_scheme: str = typer.Option(None, "--tag-scheme", help="Taggers: the file's tag scheme (bio, iob1, "
                                   "bioes, bmes, none)."),
    encoding: str = typer.Option(None, "--encoding"),
    threshold: float = typer.Option(None, "--threshold", help="Decision threshold of a multi-label model."),
    iou: float = typer.Option(None, "--iou", help="Face detectors: detection IoU for `ap` (default 0.5)."),
    dev_every: int = typer.Option(None, "--dev-every", help="Face detectors: score only every N-th photo by "
                                  "sorted image name (the dev photos of a recipe's data.dev_every N)."),
    ignore_under: float = typer.Option(None, "--ignore-under", help="Face detectors: faces narrower or shorter "
                                       "than this many pixels count neither as found nor as missed."),
    source_column: int = typer.Option(None, "--source-column", min=0, help="seq2seq: the source column."),
    target_column: int = typer.Option(None, "--target-column", min=0, help="seq2seq: the target column."),
    beam_size: int = typer.Option(None, "--beam-size", help="seq2seq: beam size of the decoding scored "
                                  "[default: the checkpoint's, 5]."),
    length_penalty: float = typer.Option(None, "--length-penalty", help="seq2seq: GNMT's alpha [default: 0.6]."),
    device: str = typer.Option("cpu", "--device"),
    threads: int = threads_option(),
):
    """Score a model on labelled data; prints ONE JSON object.

    Classification keys: accuracy, macro_f1, n, per_label {label: precision, recall, f1, support},
    confusion {labels, matrix (rows gold, columns predicted)}; multi-label adds micro_f1,
    precision, recall (accuracy is then exact-match).

    Tagging keys: accuracy (per token), n (sentences), n_tokens; for span schemes also f1,
    precision, recall (micro, conlleval's chunk rules; words for a segmenter), n_spans and
    per_type {type: precision, recall, f1, support}.

    Face detection (DATA: annotations, JSON Lines or WIDER FACE's bbx_gt.txt; see
    dlcli/vision/annotations.py) keys: ap (VOC all-point AP at --iou), ap50 (at IoU 0.5), precision
    and recall of the detections at the checkpoint's thresholds, n_images, n_faces (not ignored),
    n_detections, iou.

    Language models (DATA: plain text, one sentence or document per line) keys: perplexity, loss
    (nats per token), n_tokens (every word and each line's <eos>), unk_rate, streams.

    Seq2seq (DATA: source<TAB>target pairs) keys: bleu and chrf (0-100, as sacrebleu computes them on
    the same outputs, one reference per line, the checkpoint's tokenisation: 13a, or zh for Chinese
    targets), loss and perplexity (of the targets, read with teacher forcing), n (pairs), beam_size.

    Long lines are scored as `dlcli classify` and `dlcli tag` score them: in pieces of bounded
    length (see their --help), so time and memory grow linearly with a line's length.
    """
    from dlcli import api
    from dlcli.cli._io import write_json
    from dlcli.threads import set_inference_threads

    loaded = api.load_model(model, device)
    set_inference_threads(threads)
    overrides = {"format": format, "label_column": label_column, "text_column": text_column,
                 "header": header, "encoding": encoding, "token_column": token_column, "tag_column": tag_column,
                 "tag_scheme": tag_scheme, "source_column": source_column, "target_column": target_column}
    write_json(api.evaluate(loaded, data, overrides, threshold=threshold, iou=iou, dev_every=dev_every,
                            ignore_under=ignore_under, beam_size=beam_size,
                            length_penalty=length_penalty))
