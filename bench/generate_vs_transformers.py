"""Benchmark: greedy generation of a GPT-2-small-shaped model in dlcli against HF transformers, on CPU.

One GPT-2 (12 layers, width 768, 12 heads, 1,024 positions, vocabulary 50,257; random weights
from `--seed`) is built once in transformers, saved with save_pretrained beside a synthetic
byte-level vocab.json + merges.txt of 50,257 tokens (the 256 byte symbols, 50,000 merges of two
of them, <|endoftext|>), and converted with `dlcli convert gpt2`'s converter and loaded as
`dlcli generate` loads it. Both then continue the same prompts of token ids, greedily, by
`--new-tokens` tokens with the end-of-text token not stopping a row (dlcli: no stop id;
transformers: no eos_token_id): batch 1 (one prompt of 24 tokens) and batch 8 (prompts of 8..40
tokens, left-padded on both sides, with transformers' attention mask). dlcli runs
`model.begin` + `decoding.generate`, what `dlcli generate --temperature 0` runs under its
tokenizer; transformers runs `model.generate(input_ids, attention_mask, do_sample=False)` with
its default (dynamic) KV cache and SDPA attention. Same process, same torch thread count; the
sides alternate in each round, the prefill is timed with the new tokens, tokens/s = rows x new
tokens / seconds, the median of `--rounds`. "identical" counts the rows whose new tokens are the
same on both sides (random weights leave near-ties, which float rounding may break either way).
Appends rows to docs/benchmarks.md.

    python bench/generate_vs_transformers.py --threads 1 --rounds 3
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from _report import add_row

from dlcli import checkpoint, decoding
from dlcli.convert.gpt2 import convert_gpt2
from dlcli.loading import load_model

VOCAB = 50257
EOT = VOCAB - 1


def write_synthetic_tokenizer(folder: Path) -> None:
    """vocab.json + merges.txt of VOCAB tokens: the byte symbols, pairs of them, <|endoftext|> last."""
    from tokenizers import pre_tokenizers

    symbols = sorted(pre_tokenizers.ByteLevel.alphabet())
    merges = [(a, b) for a in symbols for b in symbols][: VOCAB - 1 - len(symbols)]
    tokens = symbols + [a + b for a, b in merges] + ["<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges),
                                       encoding="utf-8")


def build(args, folder: Path):
    """(transformers' model, dlcli's model) holding the same random weights."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(vocab_size=VOCAB, n_positions=1024, n_embd=args.width, n_layer=args.layers,
                        n_head=args.heads, bos_token_id=EOT, eos_token_id=EOT)
    torch.manual_seed(args.seed)
    hf = GPT2LMHeadModel(config).eval()
    hf.save_pretrained(folder)
    write_synthetic_tokenizer(folder)
    checkpoint.save(folder / "gpt2.pt", convert_gpt2([folder]))
    ours = load_model(folder / "gpt2.pt").model
    return hf, ours


def prompts_for(batch: int, seed: int) -> list[list[int]]:
    """`batch` prompts of token ids, each after the end-of-text token; 24 tokens alone, 8..40 in a batch."""
    g = torch.Generator().manual_seed(seed)
    lengths = [24] if batch == 1 else [8 + round(i * 32 / (batch - 1)) for i in range(batch)]
    return [[EOT, *torch.randint(0, EOT, (n - 1,), generator=g).tolist()] for n in lengths]


def run_dlcli(model, prompts: list[list[int]], new: int) -> list[list[int]]:
    # as LMTask.generate calls them: the prompts are read by `begin`, outside decoding's inference mode
    continuation = model.begin(prompts, max(map(len, prompts)) + new)
    results = decoding.generate(continuation, [new] * len(prompts), decoding.Sampling(temperature=0),
                                decoding.row_generators([0] * len(prompts)), None, model.context_length)
    return [r.ids for r in results]


@torch.inference_mode()
def run_transformers(model, prompts: list[list[int]], new: int) -> list[list[int]]:
    from transformers import GenerationConfig

    longest = max(map(len, prompts))
    ids = torch.full((len(prompts), longest), EOT, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, prompt in enumerate(prompts):
        ids[row, longest - len(prompt):] = torch.tensor(prompt)
        mask[row, longest - len(prompt):] = 1
    config = GenerationConfig(do_sample=False, max_new_tokens=new, eos_token_id=None, pad_token_id=EOT)
    out = model.generate(ids, attention_mask=mask, generation_config=config)
    assert out.shape[1] == longest + new, f"transformers stopped early: {out.shape}"
    return out[:, longest:].tolist()


def timed(fn, *args) -> tuple[float, list[list[int]]]:
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def measure(hf, ours, batch: int, args) -> dict:
    prompts = prompts_for(batch, args.seed + batch)
    run_dlcli(ours, prompts, 4)  # warm-up: first calls allocate and pick kernels
    run_transformers(hf, prompts, 4)
    times: dict[str, list[float]] = {"dlcli": [], "transformers": []}
    for _ in range(args.rounds):
        t, mine = timed(run_dlcli, ours, prompts, args.new_tokens)
        times["dlcli"].append(t)
        t, theirs = timed(run_transformers, hf, prompts, args.new_tokens)
        times["transformers"].append(t)
        print(f"batch {batch}: dlcli {times['dlcli'][-1]:.2f} s, transformers {t:.2f} s", flush=True)
    same = sum(a == b for a, b in zip(mine, theirs))
    first_diff = [next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None) for a, b in zip(mine, theirs)]
    tokens = batch * args.new_tokens
    rate = {side: tokens / statistics.median(ts) for side, ts in times.items()}
    return {"batch": batch, "prompt_lengths": [len(p) for p in prompts], "dlcli_tokens_s": rate["dlcli"],
            "transformers_tokens_s": rate["transformers"], "ratio": rate["dlcli"] / rate["transformers"],
            "identical_rows": same, "rows": batch, "first_difference": first_diff,
            "seconds": {side: [round(t, 3) for t in ts] for side, ts in times.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    import transformers

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        hf, ours = build(args, Path(tmp))
    results = [measure(hf, ours, batch, args) for batch in args.batches]
    for r in results:
        print(json.dumps(r), flush=True)
    name = "GPT-2 small shape" if (args.layers, args.width, args.heads) == (12, 768, 12) else "GPT-2 shape"
    shape = f"{name} ({args.layers} layers x {args.width}, {args.heads} heads"
    defaults = {"new_tokens": 128, "batches": [1, 8], "seed": 0, "layers": 12, "width": 768, "heads": 12}
    given = "".join(f" --{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
                    for k, v in vars(args).items() if k in defaults and v != defaults[k])
    command = f"`python bench/generate_vs_transformers.py --threads {args.threads} --rounds {args.rounds}{given}`"
    for r in results:
        lengths = r["prompt_lengths"]
        lengths = f"{min(lengths)}..{max(lengths)}" if len(lengths) > 1 else lengths[0]
        row = (f"| {datetime.date.today().isoformat()} | {shape}, vocabulary {VOCAB:,}, random weights), batch "
               f"{r['batch']}, prompts of {lengths} tokens, {args.new_tokens} new tokens greedy "
               f"| {os.cpu_count()} cores, {args.threads} threads | {r['dlcli_tokens_s']:,.1f} tokens/s "
               f"| transformers {transformers.__version__} {r['transformers_tokens_s']:,.1f} tokens/s "
               f"| {r['ratio']:.2f}x | {r['identical_rows']} / {r['rows']} | {command} |")
        print(row)
        if not args.no_append:
            add_row("Generation against transformers (GPT-2 small shape)", row,
                    intro="Greedy generation on CPU from token ids, median of alternating rounds, prefill "
                          "included; the model converted from transformers by `dlcli convert gpt2`'s converter. "
                          "\"identical rows\": rows whose new tokens are the same on both sides. See the header "
                          "of bench/generate_vs_transformers.py.",
                    columns="| date | workload | machine | dlcli | peer | ratio | identical rows | command |")


if __name__ == "__main__":
    main()
