"""Decoding: choosing each next token from a model's scores, one step at a time, for a batch of rows.

One module for every generating model. A language model starts rows with `begin`
(dlcli/models/language_model.py), an encoder-decoder with `start` (dlcli/models/encoder_decoder.py);
each is fed the chosen tokens, and this module decides what to feed and when a row is done:
`generate` samples (or takes the best token) row by row, `beam_search` keeps the best partial
outputs of each sentence.

Sampling: temperature 0 is greedy (the highest score; ties go to the lowest id). Otherwise the
scores are divided by the temperature, cut to the `top_k` best (0: all), then to the smallest set
whose probabilities sum to at least `top_p` (nucleus sampling, Holtzman et al. 2020; the best
token always stays), and one token is drawn. Every row draws from its own generator, seeded by
the caller, so a row's text depends on its seed alone, not on the batch it was generated in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

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


# ---------------------------------------------------------------- beam search


@dataclass
class Hypothesis:
    ids: list[int]  # the output, the end token left out
    logprob: float  # log-probability of the output and (when finished by it) the end token
    finish_reason: str  # "eos", or "length": cut at the sentence's maximum length
    rank_score: float = 0.0  # what hypotheses are ranked by: logprob over the length penalty
    attention: torch.Tensor | None = field(default=None, repr=False)  # (steps, S): each step's weights


def length_penalty(length: int, alpha: float) -> float:
    """Wu et al. 2016 (GNMT): ((5 + length) / 6) ** alpha; 0 ranks by log-probability alone,
    larger values favour longer outputs."""
    return ((5 + length) / 6) ** alpha


@torch.inference_mode()
def beam_search(state, start_id: int, stop_id: int, max_lengths: list[int], beam_size: int = 5,
                alpha: float = 0.6, n_best: int = 1, need_weights: bool = False) -> list[list[Hypothesis]]:
    """The `n_best` best outputs of each of the state's rows (sentences), best first.

    Every sentence keeps `beam_size` partial outputs. At each step each is extended by every token;
    of the 2 x beam best extensions (by log-probability), those ending in `stop_id` among the best
    `beam_size` become finished hypotheses, and the best `beam_size` others go on. A sentence is
    done when it has `beam_size` finished hypotheses or reaches `max_lengths[row]` tokens (its
    partial outputs then finish with reason "length"); done sentences leave the batch, so the
    cost follows the sentences still running. Finished hypotheses are ranked by logprob over
    `length_penalty` (of the output's length, the end token counted). Beam size 1 is greedy
    decoding. The state (see encoder_decoder.DecoderState) starts with one row per sentence.
    """
    if beam_size < 1 or n_best < 1 or n_best > beam_size:
        raise RecipeError(f"beam search needs 1 <= n_best ({n_best}) <= beam_size ({beam_size})")
    K = beam_size
    sentences = len(max_lengths)
    finished: list[list[Hypothesis]] = [[] for _ in range(sentences)]
    active = [b for b in range(sentences) if max_lengths[b] > 0]
    for b in range(sentences):
        if max_lengths[b] <= 0:
            finished[b].append(Hypothesis([], 0.0, "length", 0.0, None))
    if not active:
        return finished
    device = state.device
    state.select(torch.tensor(active, device=device).repeat_interleave(K))
    rows = len(active) * K
    tokens = torch.full((rows, 1), start_id, dtype=torch.long, device=device)
    scores = torch.full((len(active), K), float("-inf"), device=device)
    scores[:, 0] = 0.0  # the beams start identical: only the first one counts
    history = None  # (rows, steps, S) attention so far
    step = 0
    while active:
        logits, weights = state.step(tokens[:, -1], need_weights)
        logp = torch.log_softmax(logits.float(), dim=-1)  # (rows, V)
        V = logp.shape[-1]
        if need_weights:
            history = weights[:, None] if history is None else torch.cat([history, weights[:, None]], 1)
        step += 1
        totals = (scores.view(-1, 1) + logp).view(len(active), K * V)
        best, where = totals.topk(min(2 * K, K * V), dim=1)
        best, where = best.tolist(), where.tolist()
        keep_rows, keep_tokens, keep_scores, still = [], [], [], []
        for a, b in enumerate(active):
            going = []
            for rank, (total, flat) in enumerate(zip(best[a], where[a])):
                beam, token = divmod(flat, V)
                if total == float("-inf"):
                    break
                row = a * K + beam
                if token == stop_id:
                    if rank < K:
                        finished[b].append(_hypothesis(tokens[row, 1:], total, "eos", alpha, history, row))
                    continue
                going.append((row, token, total))
                if len(going) == K:
                    break
            if len(finished[b]) >= K or not going:
                continue
            if step >= max_lengths[b]:  # out of length: the partial outputs end here
                for row, token, total in going[: K - len(finished[b])]:
                    ids = torch.cat([tokens[row, 1:], tokens.new_tensor([token])])
                    finished[b].append(_hypothesis(ids, total, "length", alpha, history, row, length=len(ids)))
                continue
            going += [(going[-1][0], stop_id, float("-inf"))] * (K - len(going))  # pad a short beam, never chosen
            still.append(b)
            for row, token, total in going:
                keep_rows.append(row)
                keep_tokens.append(token)
                keep_scores.append(total)
        active = still
        if not active:
            break
        index = torch.tensor(keep_rows, device=tokens.device)
        state.select(index)
        tokens = torch.cat([tokens.index_select(0, index), torch.tensor(keep_tokens, device=tokens.device)[:, None]], 1)
        scores = torch.tensor(keep_scores, device=tokens.device).view(len(active), K)
        if history is not None:
            history = history.index_select(0, index)
    return [sorted(hyps, key=lambda h: -h.rank_score)[:n_best] for hyps in finished]


def _hypothesis(ids: torch.Tensor, logprob: float, reason: str, alpha: float, history, row: int,
                length: int | None = None) -> Hypothesis:
    length = len(ids) + 1 if length is None else length  # an "eos" output counts its end token
    attention = None if history is None else history[row].float().cpu()
    return Hypothesis(ids.tolist(), logprob, reason, logprob / length_penalty(length, alpha), attention)
