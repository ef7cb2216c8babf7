"""Benchmark: `dlcli train` of the rnn_lm PTB small recipe against a plain PyTorch loop of the same model.

Both train Zaremba et al.'s small LSTM (2x200, vocabulary 10,001) on PTB with the same batching
(20 streams, windows of 20 tokens, the state carried and detached), SGD lr 1 with the gradient
norm clipped at 5, a window's loss summed over time and averaged over streams. dlcli runs the
shipped recipe through `api.train` (its trainer, schedule, progress and checkpoint included);
the peer is the loop one would write by hand with torch's own nn.Embedding, nn.LSTM and
nn.Linear. Throughput is tokens/s between the `--skip`th and the last step (reading the corpus
and the warm-up left out), in alternating rounds so that machine noise hits both alike.
Appends a row to docs/benchmarks.md.

    DLCLI_DATA_DIR=../shared/datasets python bench/rnn_lm_vs_pytorch.py --steps 300 --rounds 2
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from _report import add_row
from torch import nn

from dlcli import api
from dlcli.recipe import data_root
from dlcli.tasks.lm import LMTask

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "lm" / "rnn_lm_ptb_small.yaml"
B, T, H, LAYERS = 20, 20, 200, 2


def dlcli_rate(steps: int, skip: int, out: Path) -> float:
    """Tokens/s of dlcli's training steps skip+1..steps, timed at the loss of each window."""
    stamps: list[float] = []
    original = LMTask.loss

    def timed(self, model, batch):
        stamps.append(time.perf_counter())
        return original(self, model, batch)

    LMTask.loss = timed
    try:
        api.train(RECIPE, out=out, overwrite=True,
                  overrides=[f"train.max_steps={steps + 1}", "data.dev=null", "train.state_every=0"])
    finally:
        LMTask.loss = original
    return (steps - skip) * B * T / (stamps[steps] - stamps[skip])


class PlainLM(nn.Module):
    def __init__(self, vocab_size: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, H)
        self.lstm = nn.LSTM(H, H, LAYERS)
        self.decoder = nn.Linear(H, vocab_size)
        for p in self.parameters():
            nn.init.uniform_(p, -0.1, 0.1)

    def forward(self, x, state):
        h, state = self.lstm(self.embedding(x), state)
        return self.decoder(h), state


def plain_rate(train_file: Path, steps: int, skip: int, out: Path) -> float:
    """The same training written by hand: read, batchify, loop."""
    index: dict[str, int] = {"<pad>": 0, "<unk>": 1, "<eos>": 2}
    ids: list[int] = []
    with gzip.open(train_file, "rt", encoding="utf-8") as fh:
        for line in fh:
            words = line.split()
            if words:
                ids.extend(index.setdefault(w, len(index)) for w in words + ["<eos>"])
    data = torch.tensor(ids)
    length = len(data) // B
    data = data[: B * length].view(B, length).t().contiguous()  # (L, B)
    model = PlainLM(len(index))
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    state = None
    stamps = []
    for step in range(steps + 1):
        stamps.append(time.perf_counter())
        start = step * T
        x, y = data[start:start + T], data[start + 1:start + T + 1]
        logits, state = model(x, state)
        state = tuple(s.detach() for s in state)
        loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), y.reshape(-1), reduction="sum") / B
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        float(loss.detach())  # the loss value, as a trainer logs it
    torch.save(model.state_dict(), out)
    return (steps - skip) * B * T / (stamps[steps] - stamps[skip])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--skip", type=int, default=20, help="warm-up steps left out of the timing")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train_file = data_root(None) / "ptb_lm" / "train.txt.gz"
    ours, peer = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            ours.append(dlcli_rate(args.steps, args.skip, Path(tmp) / "dlcli.pt"))
            peer.append(plain_rate(train_file, args.steps, args.skip, Path(tmp) / "plain.pt"))
            print(f"dlcli {ours[-1]:,.0f} tokens/s, plain PyTorch {peer[-1]:,.0f} tokens/s", flush=True)
    a, b = statistics.median(ours), statistics.median(peer)
    command = (f"`python bench/rnn_lm_vs_pytorch.py --steps {args.steps} --rounds {args.rounds} "
               f"--threads {args.threads}`")
    row = (f"| {datetime.date.today().isoformat()} | rnn_lm PTB small (2x200 LSTM, batch {B}, BPTT {T}), "
           f"{args.steps - args.skip} steps x {args.rounds} rounds | {os.cpu_count()} cores, {args.threads} threads "
           f"| dlcli {a:,.0f} tokens/s | plain PyTorch {b:,.0f} tokens/s | {a / b:.2f}x | {command} |")
    print(row)
    if not args.no_append:
        add_row("rnn_lm training against a plain PyTorch loop", row,
                intro="Training throughput, median over alternating rounds; both read PTB from text first "
                      "(not timed).",
                columns="| date | what | machine | dlcli | peer | ratio | command |")


if __name__ == "__main__":
    main()
