"""ELMo (dlcli/models/elmo.py): words as bytes between markers, each direction reading only its own
side, a tiny biLM learning, the lm task's line pieces, save -> load, and the frozen features'
scalar mix."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dlcli import api, checkpoint
from dlcli.models.elmo import BOUNDARY, BOW, EOW, ELMo, ElmoFeatures, bilm_config, spelled
from dlcli.tasks.elmo_features import char_spellings, word_spellings
from dlcli.tasks.lm import LMTask
from dlcli.tasks.lm_sentences import Sentences
from dlcli.text.chars import SpellingTable, spell
from dlcli.text.vocab import PAD, UNK, TokenVocab

TINY = {"max_chars": 8, "char_dim": 4, "filters": [[1, 4], [2, 6]], "highway_layers": 1, "hidden_size": 12,
        "projection_size": 6, "num_layers": 2, "dropout": 0.0}
WORDS = [None, "the", "cat", "sat", "on", "a", "mat", "dog", "Zürich"]  # None: the end token


def tiny_elmo(vocab_size: int = 12, **knobs) -> ELMo:
    torch.manual_seed(0)
    return ELMo(vocab_size, **{**TINY, **knobs})


def row(*positions: int):
    """A batch of one sentence: word_index (1, N) into WORDS and its mask."""
    index = torch.tensor([positions])
    return index, torch.ones_like(index, dtype=torch.bool)


def test_words_are_utf8_bytes_between_markers_cut_to_max_chars():
    chars = spell(["ab", "é", "abcdefghij", None], limit=6)
    assert chars.tolist()[0][:3] == [ord("a") + 1, ord("b") + 1, 0]
    assert chars.tolist()[1][:3] == [0xC3 + 1, 0xA9 + 1, 0]  # é: two bytes
    assert chars[2].tolist() == [ord(c) + 1 for c in "abcdef"]  # cut to the limit
    assert chars[3].sum() == 0  # the end token spells nothing
    ids, length = spelled(chars, max_chars=6)
    assert ids[0, :4].tolist() == [BOW, ord("a") + 1, ord("b") + 1, EOW] and length[0] == 4
    assert ids[1, :4].tolist() == [BOW, 0xC3 + 1, 0xA9 + 1, EOW]
    assert ids[2].tolist() == [BOW, *(ord(c) + 1 for c in "abcd"), EOW] and length[2] == 6  # markers kept
    assert ids[3, :3].tolist() == [BOW, BOUNDARY, EOW] and length[3] == 3
    assert (ids[0, 4:] == 0).all()
    table = SpellingTable(["ab", "é", "abcdefghij", None], limit=6)
    picked = table.spell(np.array([2, 0, 3]))
    torch.testing.assert_close(picked, spell(["abcdefghij", "ab", None], limit=6))


def test_a_taggers_characters_spell_words_as_the_words_themselves():
    features = ElmoFeatures.for_chars(TINY, 0.0, char_vocab_size=6)
    chars = [PAD, UNK, "a", "é", "東", "Z"]
    features.fill(tiny_elmo().bilm.state_dict(), char_spellings(chars))
    spelled_chars = torch.tensor([[5, 2, 3, 4], [2, 1, 0, 0]])  # "Zaé東", "a" + an unknown character
    index, mask = torch.tensor([[0, 1]]), torch.ones(1, 2, dtype=torch.bool)
    direct = features.mixed(spell(["Zaé東", "a\ufffd"], 6), index, mask)
    torch.testing.assert_close(features.from_chars(spelled_chars, index, mask), direct)
    words = ElmoFeatures.for_words(TINY, 0.0, vocab_size=4)
    words.fill(tiny_elmo().bilm.state_dict(), word_spellings([PAD, UNK, "Zaé東", "a\ufffd"], 6))
    torch.testing.assert_close(words.from_ids(torch.tensor([[2, 3]]), mask), direct)


def test_forward_never_sees_later_words_nor_backward_earlier_ones():
    model = tiny_elmo().eval()
    chars = spell(WORDS, model.word_bytes)
    index, mask = row(0, 1, 2, 3, 4, 5, 0)
    changed = index.clone()
    changed[0, 3] = 7  # "sat" -> "dog"
    _, forward, backward = model.bilm(chars, index, mask)
    _, forward2, backward2 = model.bilm(chars, changed, mask)
    for layer in range(2):
        torch.testing.assert_close(forward[layer][0, :3], forward2[layer][0, :3])  # before the change
        torch.testing.assert_close(backward[layer][0, 4:], backward2[layer][0, 4:])  # after it
        assert not torch.allclose(forward[layer][0, 3:], forward2[layer][0, 3:])
        assert not torch.allclose(backward[layer][0, :4], backward2[layer][0, :4])


def test_states_do_not_depend_on_batch_padding():
    model = tiny_elmo().eval()
    chars = spell(WORDS, model.word_bytes)
    index, mask = row(0, 2, 8, 0)
    alone = model.layers(index, mask, chars, index)
    batch = torch.tensor([[0, 2, 8, 0, 0, 0], [0, 1, 2, 3, 4, 0]])
    wide_mask = torch.tensor([[True] * 4 + [False] * 2, [True] * 6])
    together = model.layers(batch, wide_mask, chars, batch)
    torch.testing.assert_close(together[:, 0, :4], alone[:, 0], rtol=1e-5, atol=1e-6)
    assert together.shape == (3, 2, 6, 12)  # layers (token + 2 LSTM), batch, positions, [forward; backward]
    torch.testing.assert_close(together[0, ..., :6], together[0, ..., 6:])  # layer 0: the token twice


@pytest.mark.parametrize("samples", [0, 5])
def test_a_tiny_elmo_learns(samples):
    model = tiny_elmo(vocab_size=9, softmax_samples=samples)
    chars = spell(WORDS, model.word_bytes)
    index = torch.tensor([[0, 1, 2, 3, 4, 5, 6, 0], [0, 1, 7, 3, 4, 5, 6, 0]])  # ids = word positions
    mask = torch.ones_like(index, dtype=torch.bool)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)

    def full_loss() -> float:
        model.eval()
        with torch.no_grad():
            forward, backward = model(index, mask, chars, index)
        model.train()
        return float(forward.mean() + backward.mean()) / 2

    before = full_loss()
    for _ in range(40):
        forward, backward = model(index, mask, chars, index)
        assert forward.shape == backward.shape == (2, 7)
        optimizer.zero_grad()
        ((forward.sum() + backward.sum()) / 28).backward()
        optimizer.step()
    after = full_loss()
    assert after < 0.6 * before, (before, after)  # the full softmax's loss: a sampled softmax trains it too


def test_line_pieces_predict_every_token_once_each_way():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 12, size=20)  # each line's tokens, its end token included
    starts = np.concatenate([[0], np.cumsum(lengths)])
    eos = 2
    ids = np.arange(100, 100 + starts[-1])
    ids[starts[1:] - 1] = eos
    pieces = Sentences(ids, starts, bptt=4, eos_id=eos)
    assert pieces.length.max() <= 5 and pieces.length.min() >= 2
    forward, backward = [], []
    for start, length in zip(pieces.start, pieces.length):
        forward += list(range(start + 1, start + length))
        backward += list(range(start, start + length - 1))
    assert sorted(forward) == list(range(starts[-1]))  # every token, end tokens included, once
    assert sorted(backward) == list(range(-1, starts[-1] - 1))  # and the end token each line follows
    batch = pieces.collate([0, len(pieces) - 1])
    assert batch["ids"][0, 0] == eos and batch["mask"].sum() == pieces.length[[0, -1]].sum()


def test_checkpoint_round_trip_gives_identical_layers(tmp_path):
    vocab = TokenVocab("word", [PAD, UNK, "<eos>", "the", "cat"], False, r"\w+", eos=True)
    task = LMTask(vocab)
    task.bidirectional = True
    model = tiny_elmo(vocab_size=vocab.size, softmax_samples=3).eval()
    path = tmp_path / "elmo.pt"
    kwargs = {**TINY, "softmax_samples": 3}
    checkpoint.save(path, {"task": "lm", "recipe": {"data": {}}, "model": {"type": "elmo", "kwargs": kwargs},
                           **task.payload(), "state_dict": model.state_dict(), "metrics": {}})
    loaded = api.load_model(path)
    assert loaded.task.bidirectional and loaded.task.command == "dlcli embed"
    chars = spell(WORDS, model.word_bytes)
    index, mask = row(0, 1, 2, 0)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model.layers(index, mask, chars, index),
                                   model.layers(index, mask, chars, index))
        torch.testing.assert_close(loaded.model(index, mask, chars, index), model(index, mask, chars, index))


def test_scalar_mix_is_softmax_normalised_and_the_bilm_gets_no_gradient():
    features = ElmoFeatures.for_words(bilm_config({**TINY, "softmax_samples": 4}), 0.0, vocab_size=len(WORDS))
    bilm = tiny_elmo().bilm.state_dict()
    features.fill(bilm, word_spellings([PAD, *WORDS[1:]], 6))
    with torch.no_grad():
        features.scalars.copy_(torch.tensor([0.3, -1.0, 2.0]))
    features.train()
    assert not features.bilm.training and features.dropout.training
    ids = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0]])
    mask = ids > 0
    out = features.from_ids(ids, mask)
    assert out.shape == (2, 4, 12)
    out.sum().backward()
    assert features.scalars.grad is not None and features.gamma.grad is not None
    assert all(p.grad is None and not p.requires_grad for p in features.bilm.parameters())
    layers = features.bilm.layers(*_spelled_batch(features, ids, mask))[:, :, 1:5]
    weights = torch.softmax(features.scalars.detach(), 0)
    assert float(weights.sum()) == pytest.approx(1.0)
    expected = features.gamma * torch.einsum("l,lbtd->btd", weights, layers)
    torch.testing.assert_close(out[mask], expected[mask].detach())
    for name, tensor in features.bilm.state_dict().items():
        torch.testing.assert_close(tensor, bilm[name])


def _spelled_batch(features: ElmoFeatures, ids: torch.Tensor, mask: torch.Tensor):
    """chars, word_index and mask of `ids` between end tokens, as ElmoFeatures.mixed builds them."""
    words = features.table.long()
    chars = torch.cat([words, words.new_zeros(1, words.size(1))])
    boundary = len(words)
    index = torch.full((ids.size(0), ids.size(1) + 2), boundary)
    index[:, 1:-1] = torch.where(mask, ids, boundary)
    inside = torch.arange(ids.size(1) + 2)[None, :] < (mask.sum(1) + 2)[:, None]
    return chars, index, inside
