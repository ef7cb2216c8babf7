"""BiLSTM taggers: shapes, finite loss, gradients, padding independence, save -> load, CRF constraints."""

from __future__ import annotations

import pytest
import torch

from dlcli import registry
from dlcli.models.tagger import TaggerInputs
from dlcli.text.batching import pad

TAGS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC")
INPUTS = TaggerInputs(TAGS, "bio", char_vocab_size=12, feature_vocab_sizes=(6,))
VOCAB, PAD = 20, 0
TAGGERS = sorted(registry.MODELS["tag"].keys() - {"bert"})  # the bert tagger: test_bert_tagger.py
SENTENCES = [[3, 4, 5, 6, 7], [8, 9], [10, 11, 12]]
SPELLING = [[2, 3], [4], [5, 6, 7], [8, 9, 10, 11]]  # the batch's distinct words, as char ids


def build(name: str, **knobs):
    torch.manual_seed(0)
    tiny = {"embedding_dim": 8, "hidden_size": 6, "char_dim": 4, "char_hidden": 5, "feature_dim": 3}
    return registry.MODELS["tag"][name](VOCAB, len(TAGS), PAD, INPUTS, **{**tiny, **knobs})


def inputs_for(rows: list[list[int]]):
    ids, mask = pad(rows, PAD)
    char_index = (ids % len(SPELLING)) * mask
    chars = pad(SPELLING, 0)[0]
    features = (ids % 5 + 1).unsqueeze(2) * mask.unsqueeze(2)
    return ids, mask, chars, char_index, features


@pytest.mark.parametrize("name", TAGGERS)
@pytest.mark.parametrize("char_encoder", ["none", "cnn", "lstm"])
def test_forward_loss_backward(name, char_encoder):
    model = build(name, char_encoder=char_encoder)
    ids, mask, chars, char_index, features = inputs_for(SENTENCES)
    scores = model(ids, mask, chars, char_index, features)
    assert scores.shape == (3, 5, len(TAGS))
    tags = torch.randint(len(TAGS), ids.shape) * mask
    loss = model.loss(scores, tags, mask)
    assert torch.isfinite(loss)
    loss.backward()
    named = dict(model.named_parameters())
    assert named["embedding.weight"].grad.abs().sum() > 0
    if char_encoder != "none":
        assert named["chars.embedding.weight"].grad.abs().sum() > 0
    paths = model.decode(scores.detach(), mask)
    assert [len(p) for p in paths] == [5, 2, 3]


@pytest.mark.parametrize("name", TAGGERS)
@pytest.mark.parametrize("char_encoder", ["cnn", "lstm"])
def test_scores_do_not_depend_on_batch_padding(name, char_encoder):
    model = build(name, char_encoder=char_encoder).eval()
    alone = model(*inputs_for([SENTENCES[1]]))
    batched = model(*inputs_for(SENTENCES))
    torch.testing.assert_close(batched[1, :2], alone[0], rtol=1e-5, atol=1e-6)


def test_crf_constraints_follow_the_scheme():
    model = build("bilstm_crf").eval()
    ids, mask, chars, char_index, features = inputs_for(SENTENCES)
    scores = torch.zeros(3, 5, len(TAGS))
    scores[:, :, TAGS.index("I-PER")] = 5.0  # emissions alone would say I-PER everywhere
    paths = model.decode(scores, mask)
    assert all(p[0] != TAGS.index("I-PER") for p in paths)  # BIO: no span opens with I-
    unconstrained = build("bilstm_crf", constrained=False).eval()
    assert unconstrained.decode(scores, mask)[0] == [TAGS.index("I-PER")] * 5


def test_word_dropout_only_in_training():
    model = build("bilstm_softmax", word_dropout=1.0)
    ids, mask, *rest = inputs_for(SENTENCES)
    model.eval()
    a = model(ids, mask, *rest)
    b = model(torch.full_like(ids, 1) * mask, mask, *rest)  # every token unknown
    assert not torch.allclose(a, b)
    model.train()
    torch.manual_seed(3)
    c = model.dropout.p
    model.dropout.p = 0.0  # isolate word dropout from ordinary dropout
    torch.testing.assert_close(model(ids, mask, *rest), b)
    model.dropout.p = c


def test_state_dict_round_trip():
    model = build("bilstm_crf", char_encoder="cnn").eval()
    clone = build("bilstm_crf", char_encoder="cnn")
    torch.manual_seed(99)
    for p in clone.parameters():
        torch.nn.init.normal_(p)
    clone.load_state_dict(model.state_dict())
    clone.eval()
    batch = inputs_for(SENTENCES)
    torch.testing.assert_close(clone(*batch), model(*batch), rtol=0, atol=0)


def test_bad_char_encoder_is_rejected():
    with pytest.raises(ValueError, match="char_encoder"):
        build("bilstm_crf", char_encoder="gru")
