"""CRF against brute-force enumeration of every tag sequence, and tag-scheme constraints."""

from __future__ import annotations

import itertools

import pytest
import torch

from dlcli.nn.crf import CRF, scheme_constraints

K, T = 3, 4
LENGTHS = [4, 2, 1]


def make(constraints=None, seed: int = 0):
    torch.manual_seed(seed)
    crf = CRF(K if constraints is None else constraints[0].size(0), constraints)
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_()
    emissions = torch.randn(len(LENGTHS), T, crf.num_tags)
    mask = torch.arange(T).unsqueeze(0) < torch.tensor(LENGTHS).unsqueeze(1)
    return crf, emissions, mask


def brute_force(crf: CRF, emissions: torch.Tensor, length: int):
    """(log Z, best path) by scoring all K^length sequences one by one."""
    trans, start, end = crf._scores()
    scores = {}
    for path in itertools.product(range(crf.num_tags), repeat=length):
        s = start[path[0]] + end[path[-1]] + sum(emissions[t, tag] for t, tag in enumerate(path))
        s = s + sum(trans[a, b] for a, b in zip(path, path[1:]))
        scores[path] = s
    values = torch.stack(list(scores.values()))
    return torch.logsumexp(values, 0), list(max(scores, key=lambda p: scores[p]))


def test_log_partition_and_viterbi_match_enumeration():
    crf, emissions, mask = make()
    log_z = crf.log_partition(emissions, mask)
    best = crf.decode(emissions, mask)
    for b, length in enumerate(LENGTHS):
        want_z, want_path = brute_force(crf, emissions[b], length)
        assert torch.allclose(log_z[b], want_z, atol=1e-5)
        assert best[b] == want_path


def test_path_score_and_nll_are_a_proper_likelihood():
    crf, emissions, mask = make(seed=1)
    tags = torch.randint(0, K, (len(LENGTHS), T))
    for b, length in enumerate(LENGTHS):
        path = tags[b, :length].tolist()
        trans, start, end = crf._scores()
        want = start[path[0]] + end[path[-1]] + sum(emissions[b, t, tag] for t, tag in enumerate(path))
        want = want + sum(trans[x, y] for x, y in zip(path, path[1:]))
        assert torch.allclose(crf.path_score(emissions, tags, mask)[b], want, atol=1e-5)
    # probabilities of all sequences of the shortest item sum to one
    one = torch.stack([crf.path_score(emissions[2:3], torch.tensor([[tag] + [0] * (T - 1)]), mask[2:3])
                       for tag in range(K)])
    assert torch.allclose(torch.logsumexp(one, 0), crf.log_partition(emissions[2:3], mask[2:3]), atol=1e-5)
    loss = crf.nll(emissions, tags, mask)
    assert loss.item() > 0
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in crf.parameters())


def test_padding_does_not_change_results():
    crf, emissions, mask = make(seed=2)
    wider = torch.cat([emissions, torch.randn(len(LENGTHS), 3, K) * 100], 1)
    wider_mask = torch.cat([mask, torch.zeros(len(LENGTHS), 3, dtype=torch.bool)], 1)
    assert torch.allclose(crf.log_partition(emissions, mask), crf.log_partition(wider, wider_mask), atol=1e-5)
    assert crf.decode(emissions, mask) == crf.decode(wider, wider_mask)


def valid(tags: list[str], path: list[int], constraints) -> bool:
    allowed, start_ok, end_ok = constraints
    return bool(start_ok[path[0]] and end_ok[path[-1]] and all(allowed[a, b] for a, b in zip(path, path[1:])))


@pytest.mark.parametrize("scheme, tags, good, bad", [
    ("bio", ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"], ["B-PER", "I-PER", "O", "B-LOC"],
     [["O", "I-PER"], ["I-PER"], ["B-LOC", "I-PER"]]),
    ("iob1", ["O", "I-PER", "B-PER", "I-LOC"], ["I-PER", "B-PER", "O", "I-LOC"],
     [["B-PER"], ["O", "B-PER"], ["I-LOC", "B-PER"]]),
    ("bioes", ["O", "B-PER", "I-PER", "E-PER", "S-PER", "S-LOC"], ["B-PER", "I-PER", "E-PER", "S-LOC", "O"],
     [["B-PER", "O"], ["B-PER"], ["I-PER", "E-PER"], ["O", "E-PER"], ["B-PER", "S-PER"]]),
    ("bmes", ["B", "M", "E", "S"], ["B", "M", "E", "S", "B", "E"], [["M", "E"], ["B", "S"], ["S", "B"], ["E"]]),
])
def test_scheme_constraints(scheme, tags, good, bad):
    constraints = scheme_constraints(tags, scheme)
    index = {t: i for i, t in enumerate(tags)}
    assert valid(tags, [index[t] for t in good], constraints)
    for sequence in bad:
        assert not valid(tags, [index[t] for t in sequence], constraints), sequence


def test_decoding_never_returns_a_forbidden_path():
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    constraints = scheme_constraints(tags, "bio")
    crf, _, _ = make(constraints, seed=3)
    emissions = torch.zeros(1, 3, len(tags))
    emissions[0, :, tags.index("I-PER")] = 50.0  # the emissions alone would say I-PER I-PER I-PER
    (path,) = crf.decode(emissions, torch.ones(1, 3, dtype=torch.bool))
    assert valid(tags, path, constraints)
    assert [tags[i] for i in path] == ["B-PER", "I-PER", "I-PER"]


def test_unknown_scheme():
    with pytest.raises(ValueError, match="unknown tag scheme"):
        scheme_constraints(["O"], "bilou2")


def test_nbest_matches_enumeration():
    crf, emissions, mask = make(seed=3)
    nbest = crf.decode_nbest(emissions, mask, 5)
    trans, start, end = (x.detach() for x in crf._scores())
    for b, length in enumerate(LENGTHS):
        ranked = []
        for path in itertools.product(range(crf.num_tags), repeat=length):
            s = start[path[0]] + end[path[-1]] + sum(emissions[b, t, tag] for t, tag in enumerate(path))
            ranked.append((float(s + sum(trans[x, y] for x, y in zip(path, path[1:]))), list(path)))
        ranked.sort(key=lambda item: -item[0])
        want = ranked[:5]
        assert [p for p, _ in nbest[b]] == [p for _, p in want]
        assert [s for _, s in nbest[b]] == pytest.approx([s for s, _ in want], abs=1e-4)
    assert nbest[0][0][0] == crf.decode(emissions, mask)[0]
    assert len(crf.decode_nbest(emissions, mask, 10)[2]) == K  # a 1-token sequence has K paths
