"""`dlcli convert KIND PATH... --out PATH`: weights from other tools into a dlcli checkpoint."""

from __future__ import annotations

import typer

KINDS = ("bert", "gpt2", "mtcnn", "vectors")

EXAMPLES = """Examples:

  dlcli convert mtcnn pnet.pt rnet.pt onet.pt --out mtcnn.pt

  dlcli convert mtcnn det1.npy det2.npy det3.npy -o mtcnn.pt

  dlcli convert mtcnn facenet/src/align -o mtcnn.pt

  dlcli convert vectors glove.6B.100d.txt -o glove100.pt

  dlcli convert gpt2 ~/models/gpt2 -o gpt2.pt

  dlcli convert bert ~/models/all-MiniLM-L6-v2 -o minilm.pt
"""


def convert_command(
    kind: str = typer.Argument(..., metavar="KIND", help="What the weights are: bert (a Hugging Face BERT "
                               "folder), gpt2 (a Hugging Face GPT-2 folder), mtcnn (the original MTCNN face "
                               "detector: P-Net, R-Net and O-Net), vectors (word vectors: word2vec text or "
                               "binary, GloVe text, fastText .vec)."),
    paths: list[str] = typer.Argument(..., metavar="PATH...", help="Weight files, or folders holding them."),
    out: str = typer.Option(..., "--out", "-o", help="Checkpoint to write."),
):
    """Convert weights made by other tools into a dlcli checkpoint; prints a JSON summary.

    mtcnn reads facenet-pytorch's pnet.pt, rnet.pt and onet.pt (tensors only, loaded with
    weights_only), or the TensorFlow port's det1.npy, det2.npy and det3.npy. Those .npy files are
    pickles, which can carry code: dlcli reads them with an unpickler that builds NumPy arrays and
    refuses everything else, so no code from the file runs; still, convert only files from a
    source you trust. Files are recognised by their content, in any order; a folder stands for
    the weight files in it.

    vectors reads one word-vectors file (format recognised from its content, .gz allowed) and
    makes an embeddings checkpoint for `dlcli embed`, `dlcli evaluate` and `data.vectors`.

    gpt2 reads a Hugging Face GPT-2 folder (config.json, vocab.json, merges.txt, and
    model.safetensors or pytorch_model.bin, the latter loaded with weights_only) and makes a
    language model checkpoint for `dlcli generate`, `dlcli evaluate` and `dlcli predict`.

    bert reads a Hugging Face BERT folder (config.json, tokenizer.json or vocab.txt, and
    model.safetensors or pytorch_model.bin) and makes an encoder checkpoint (task mlm) for
    `dlcli embed` and `dlcli evaluate`; a sentence-transformers folder's pooling, normalisation
    and maximum length become `dlcli embed`'s defaults. The summary's "notes" say what was
    initialised or left out.
    """
    import difflib
    from pathlib import Path

    from dlcli import checkpoint
    from dlcli.cli._io import write_json
    from dlcli.convert.bert import convert_bert
    from dlcli.convert.gpt2 import convert_gpt2
    from dlcli.convert.mtcnn import convert_mtcnn
    from dlcli.convert.vectors import convert_vectors
    from dlcli.errors import RecipeError

    if kind not in KINDS:
        close = difflib.get_close_matches(kind, KINDS, n=1, cutoff=0.5)
        raise RecipeError(f"convert: unknown kind {kind!r}",
                          f"did you mean {close[0]!r}?" if close else f"choose one of: {', '.join(KINDS)}")
    converters = {"bert": convert_bert, "gpt2": convert_gpt2, "mtcnn": convert_mtcnn, "vectors": convert_vectors}
    payload = converters[kind]([Path(p) for p in paths])
    checkpoint.save(out, payload)
    parameters = sum(t.numel() for t in payload["state_dict"].values())
    write_json({"checkpoint": out, "task": payload["task"], "model": payload["model"]["type"],
                "converted_from": payload["converted_from"], "parameters": parameters,
                **({"notes": payload["notes"]} if payload.get("notes") else {})})
