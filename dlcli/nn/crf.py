"""Linear-chain conditional random field: batched, masked forward algorithm and Viterbi decoding.

Lafferty et al., "Conditional Random Fields", ICML 2001; as an output layer over a BiLSTM:
Huang et al., "Bidirectional LSTM-CRF Models for Sequence Tagging", 2015.

Shapes: B batch, T time, K tags. Masks are left-aligned (True for the first `length` positions)
and every sequence has at least one position. Transitions a tag scheme forbids (an I-X that
follows O in BIO, ...) get a large negative score that is not learned.
"""

from __future__ import annotations

import torch
from torch import nn

FORBIDDEN = -1.0e4  # finite, so gradients stay finite; exp(-1e4) is 0 in any float type


class CRF(nn.Module):
    def __init__(self, num_tags: int, constraints: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None):
        super().__init__()
        self.num_tags = num_tags
        self.transitions = nn.Parameter(torch.empty(num_tags, num_tags))  # [from, to]
        self.start = nn.Parameter(torch.empty(num_tags))
        self.end = nn.Parameter(torch.empty(num_tags))
        for p in (self.transitions, self.start, self.end):
            nn.init.uniform_(p, -0.1, 0.1)
        allowed, start_ok, end_ok = constraints or (
            torch.ones(num_tags, num_tags, dtype=torch.bool), torch.ones(num_tags, dtype=torch.bool),
            torch.ones(num_tags, dtype=torch.bool))
        self.register_buffer("transition_penalty", (~allowed).float() * FORBIDDEN, persistent=False)
        self.register_buffer("start_penalty", (~start_ok).float() * FORBIDDEN, persistent=False)
        self.register_buffer("end_penalty", (~end_ok).float() * FORBIDDEN, persistent=False)

    def _scores(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (self.transitions + self.transition_penalty, self.start + self.start_penalty,
                self.end + self.end_penalty)

    def log_partition(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """log Z for each sequence (B,), by the forward algorithm in log space."""
        trans, start, end = self._scores()
        alpha = start + emissions[:, 0]  # (B, K)
        for t in range(1, emissions.size(1)):
            step = torch.logsumexp(alpha.unsqueeze(2) + trans, dim=1) + emissions[:, t]  # (B, K)
            alpha = torch.where(mask[:, t].unsqueeze(1), step, alpha)
        return torch.logsumexp(alpha + end, dim=1)

    def path_score(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Score of the given tag sequences (B,)."""
        trans, start, end = self._scores()
        mask_f = mask.to(emissions.dtype)
        emitted = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)  # (B, T)
        moved = trans[tags[:, :-1], tags[:, 1:]]  # (B, T-1)
        last = tags.gather(1, (mask.sum(1, keepdim=True) - 1).clamp(min=0)).squeeze(1)  # (B,)
        return (start[tags[:, 0]] + (emitted * mask_f).sum(1) + (moved * mask_f[:, 1:]).sum(1) + end[last])

    def nll(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood of the gold tags over the batch."""
        return (self.log_partition(emissions, mask) - self.path_score(emissions, tags, mask)).mean()

    @torch.no_grad()
    def decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
        """The best tag sequence of each item (Viterbi), each as long as its mask."""
        trans, start, end = self._scores()
        score = start + emissions[:, 0]  # (B, K)
        pointers = []
        for t in range(1, emissions.size(1)):
            best, arg = (score.unsqueeze(2) + trans).max(dim=1)  # (B, K): best previous tag per tag
            step = best + emissions[:, t]
            keep = mask[:, t].unsqueeze(1)
            score = torch.where(keep, step, score)
            # past a sequence's end the pointer is the identity, so backtracking passes through
            pointers.append(torch.where(keep, arg, torch.arange(self.num_tags, device=arg.device)))
        tag = (score + end).argmax(1)  # (B,)
        path = [tag]
        for arg in reversed(pointers):
            tag = arg.gather(1, tag.unsqueeze(1)).squeeze(1)
            path.append(tag)
        full = torch.stack(path[::-1], 1)  # (B, T)
        lengths = mask.sum(1).tolist()
        return [row[:n] for row, n in zip(full.tolist(), lengths)]

    @torch.no_grad()
    def decode_nbest(self, emissions: torch.Tensor, mask: torch.Tensor, n: int) -> list[list[tuple[list[int], float]]]:
        """The n best tag sequences of each item with their scores, best first (list Viterbi:
        n candidates kept per tag and step). Fewer when a sequence has fewer than n paths."""
        trans, start, end = self._scores()
        b, k = emissions.size(0), self.num_tags
        neg = torch.finfo(emissions.dtype).min
        score = torch.full((b, k, n), neg, dtype=emissions.dtype, device=emissions.device)  # (B, K, n)
        score[:, :, 0] = start + emissions[:, 0]
        pointers = []  # per step (B, K, n): flat index prev_tag * n + prev_rank
        identity = torch.arange(k * n, device=emissions.device).view(1, k, n).expand(b, k, n)
        for t in range(1, emissions.size(1)):
            cand = score.unsqueeze(2) + trans.view(1, k, k, 1)  # (B, Kprev, K, n)
            cand = cand.permute(0, 2, 1, 3).reshape(b, k, k * n)  # (B, K, Kprev*n)
            best, arg = cand.topk(n, dim=2)  # (B, K, n)
            step = best + emissions[:, t].unsqueeze(2)
            keep = mask[:, t].view(b, 1, 1)
            score = torch.where(keep, step, score)
            pointers.append(torch.where(keep, arg, identity))
        final = (score + end.view(1, k, 1)).reshape(b, k * n)
        top, flat = final.topk(n, dim=1)  # (B, n)
        lengths = mask.sum(1).tolist()
        out = []
        for i in range(b):
            paths = []
            for rank in range(n):
                if top[i, rank] <= neg / 2 or top[i, rank] < top[i, 0] + FORBIDDEN / 2:
                    break  # no such path, or only ones through a forbidden transition
                index, path = int(flat[i, rank]), []
                for arg in reversed(pointers):
                    path.append(index // n)
                    index = int(arg[i].view(-1)[index])
                path.append(index // n)
                paths.append((path[::-1][: lengths[i]], float(top[i, rank])))
            out.append(paths)
        return out


def scheme_constraints(tags: list[str], scheme: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Allowed (from, to) transitions, start tags and end tags for a tagging scheme.

    scheme: `bio` (IOB2), `iob1`, `bioes` (also written BILOU-style with E/S), `bmes` (Chinese
    segmentation; tags may carry types, e.g. B-PER). Tags are `PREFIX-TYPE` or `O`.
    """
    parts = [_split(tag) for tag in tags]
    k = len(tags)
    allowed = torch.ones(k, k, dtype=torch.bool)
    start_ok = torch.ones(k, dtype=torch.bool)
    end_ok = torch.ones(k, dtype=torch.bool)
    inside = {"bio": "I", "iob1": "I", "bioes": "I", "bmes": "M"}.get(scheme)
    if inside is None:
        raise ValueError(f"unknown tag scheme {scheme!r}: use bio, iob1, bioes or bmes")
    closing = {"bioes": ("E",), "bmes": ("E",)}.get(scheme, ())
    for j, (prefix, kind) in enumerate(parts):
        continues = prefix == inside or prefix in closing  # must follow the same entity's B/inside
        if scheme == "iob1":
            continues = prefix == "B"  # B-X only separates two adjacent X entities
            start_ok[j] = prefix != "B"
        elif continues:
            start_ok[j] = False
        if scheme in ("bioes", "bmes"):
            end_ok[j] = prefix not in ("B", inside)
        for i, (prev_prefix, prev_kind) in enumerate(parts):
            open_entity = prev_prefix in ("B", inside) if scheme != "iob1" else prev_prefix in ("B", "I")
            if continues:
                allowed[i, j] = open_entity and prev_kind == kind
            elif scheme in ("bioes", "bmes") and prev_prefix in ("B", inside):
                allowed[i, j] = False  # an open entity must continue or close
    return allowed, start_ok, end_ok


def _split(tag: str) -> tuple[str, str]:
    if tag == "O":
        return "O", ""
    prefix, _, kind = tag.partition("-")
    return prefix.upper(), kind
