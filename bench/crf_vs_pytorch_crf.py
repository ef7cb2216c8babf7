"""Benchmark: dlcli's CRF against pytorch-crf (torchcrf) on the same parameters and inputs.

Checks that both give the same log-likelihood (to 1e-5) and the same Viterbi paths, then times
log-likelihood forward+backward and Viterbi decoding, batch 32 x 30 tokens x 9 tags on CPU.
Appends rows to docs/benchmarks.md.

    pip install pytorch-crf && python bench/crf_vs_pytorch_crf.py
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import time
from pathlib import Path

import torch
from _report import add_row
from torchcrf import CRF as PeerCRF

from dlcli.nn.crf import CRF

ROOT = Path(__file__).resolve().parents[1]


def rates(ours, peer, batch: int, repeats: int) -> tuple[float, float]:
    """Median sentences/s of each, timed alternately so that machine noise hits both alike."""
    ours(), peer()  # warm-up
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, spent in zip((ours, peer), times):
            start = time.perf_counter()
            fn()
            spent.append(time.perf_counter() - start)
    return batch / statistics.median(times[0]), batch / statistics.median(times[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=30)
    parser.add_argument("--tags", type=int, default=9)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()

    torch.manual_seed(0)
    ours, peer = CRF(args.tags), PeerCRF(args.tags, batch_first=True)
    with torch.no_grad():  # the same parameters in both
        peer.transitions.copy_(ours.transitions)
        peer.start_transitions.copy_(ours.start)
        peer.end_transitions.copy_(ours.end)
    emissions = torch.randn(args.batch, args.length, args.tags, requires_grad=True)
    lengths = torch.randint(args.length // 2, args.length + 1, (args.batch,))
    lengths[0] = args.length
    mask = torch.arange(args.length).unsqueeze(0) < lengths.unsqueeze(1)
    tags = torch.randint(0, args.tags, (args.batch, args.length))

    ll_ours = -(ours.log_partition(emissions, mask) - ours.path_score(emissions, tags, mask))
    ll_peer = peer(emissions, tags, mask, reduction="none")
    assert torch.allclose(ll_ours, ll_peer, atol=1e-5), (ll_ours - ll_peer).abs().max()
    assert ours.decode(emissions, mask) == peer.decode(emissions, mask)

    def train_ours():
        ours.nll(emissions, tags, mask).backward()

    def train_peer():
        (-peer(emissions, tags, mask, reduction="mean")).backward()

    results = {
        "log-likelihood fwd+bwd": rates(train_ours, train_peer, args.batch, args.repeats),
        "Viterbi": rates(lambda: ours.decode(emissions, mask), lambda: peer.decode(emissions, mask),
                         args.batch, args.repeats),
        "log-likelihood fwd+bwd + Viterbi": rates(lambda: (train_ours(), ours.decode(emissions, mask)),
                                                  lambda: (train_peer(), peer.decode(emissions, mask)),
                                                  args.batch, args.repeats),
    }
    today = datetime.date.today().isoformat()
    command = "`python bench/crf_vs_pytorch_crf.py`"
    rows = [f"| {today} | CRF {name}, batch {args.batch} x {args.length} x {args.tags} tags | {os.cpu_count()} cores "
            f"| dlcli {a:,.0f} sent/s | pytorch-crf {b:,.0f} sent/s | {a / b:.2f}x | {command} |"
            for name, (a, b) in results.items()]
    print("\n".join(rows))
    if not args.no_append:
        for row in rows:
            add_row("CRF against pytorch-crf", row)


if __name__ == "__main__":
    main()
