"""Decoding: choosing each next token from a model's scores, one step at a time, for a batch of rows.

One module for every generating model (the lm task's now; seq2seq's beam search belongs here too).
A model starts rows with `begin` (dlcli/models/language_model.py) and is fed each chosen token;
this module decides what to feed and when a row is done.

Sampling: temperature 0 is greedy (the highest score; ties go to the lowest id). Otherwise the
scores are divided by the temperature, cut to the `top_k` best (0: all), then to the smallest set
whose probabilities sum to at least `top_p` (nucleus sampling, Holtzman et al. 2020; the best
token always stays), and one token is drawn. Every row draws from its own generator, seeded by
the caller, so a row's text depends on its seed alone, not on the batch it was generated in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from dlcli.errors import RecipeError

FINISH = ("eos", "length", "context")  # the end-of-text token, max_new_tokens, the model's context length


@dataclass(frozen=True)
class Sampling:
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0

    def __post_init__(self):
        check_sampling(self.temperature, self.top_k, self.top_p)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def check_sampling(temperature: float, top_k: int, top_p: float) -> None:
    """Refuse settings that sample from nothing, naming the option."""
    if not temperature >= 0:
        raise RecipeError(f"temperature: must be 0 (greedy) or more, got {temperature}")
    if top_k < 0:
        raise RecipeError(f"top_k: must be 0 (all tokens) or more, got {top_k}")
    if not 0 < top_p <= 1:
        raise RecipeError(f"top_p: must be in (0, 1], got {top_p}",
                          "1 keeps every token; 0.9 keeps the fewest whose probabilities sum to 0.9")


def row_generators(seeds: list[int], device: torch.device | str = "cpu") -> list[torch.Generator]:
    return [torch.Generator(device=device).manual_seed(int(seed)) for seed in seeds]


def choose(logits: torch.Tensor, sampling: Sampling, generators: list[torch.Generator]) -> torch.Tensor:
    """(B,) the token chosen for each row of (B, V) scores."""
    if sampling.greedy:
        return logits.argmax(-1)
    scores = logits.float() / sampling.temperature
    if 0 < sampling.top_k < scores.shape[-1]:
        kth = scores.topk(sampling.top_k, dim=-1).values[:, -1:]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    if sampling.top_p < 1:
        ranked, order = probs.sort(dim=-1, descending=True)
        before = ranked.cumsum(-1) - ranked  # the mass of the better tokens
        ranked = ranked.masked_fill(before >= sampling.top_p, 0.0)
        probs = torch.zeros_like(probs).scatter_(-1, order, ranked)
    cdf = probs.cumsum(-1)
    draws = torch.stack([torch.rand((), generator=g, device=g.device) for g in generators]).to(cdf.device)
    # right: token i owns [cdf[i-1], cdf[i]), so a draw of exactly 0 never lands on a token of probability 0
    picked = torch.searchsorted(cdf, (draws * cdf[:, -1])[:, None], right=True).squeeze(1)
    return picked.clamp(max=probs.shape[-1] - 1)


@dataclass
class Generated:
    ids: list[int]  # the new tokens, the end-of-text token left out
    finish_reason: str  # one of FINISH


@torch.inference_mode()
def generate(continuation, max_new_tokens: list[int], sampling: Sampling, generators: list[torch.Generator],
             stop_id: int | None, context_length: int | None = None,
             on_token: Callable[[int, int], None] | None = None) -> list[Generated]:
    """Continue every row of `continuation` (see language_model.Continuation) until it produces
    `stop_id`, has `max_new_tokens[row]` new tokens, or has read `context_length` tokens (the
    token predicted from a full window is kept). `on_token(row, id)` sees each new kept token as
    it is chosen. Finished rows are still fed (the batch moves together) and their tokens ignored."""
    rows = len(max_new_tokens)
    out: list[list[int]] = [[] for _ in range(rows)]
    reason: list[str | None] = [None] * rows
    for row in range(rows):
        if max_new_tokens[row] <= 0:
            reason[row] = "length"
    for _ in range(max(max_new_tokens, default=0)):
        if all(reason):
            break
        chosen = choose(continuation.logits, sampling, generators)
        picked, used = chosen.tolist(), continuation.positions_used.tolist()
        for row, token in enumerate(picked):
            if reason[row]:
                continue
            if token == stop_id:
                reason[row] = "eos"
                continue
            out[row].append(token)
            if on_token is not None:
                on_token(row, token)
            if len(out[row]) >= max_new_tokens[row]:
                reason[row] = "length"
            elif context_length is not None and used[row] >= context_length:
                reason[row] = "context"
        if not all(reason):
            continuation.feed(chosen)
    return [Generated(ids, why or "length") for ids, why in zip(out, reason)]
