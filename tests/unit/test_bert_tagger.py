"""The BERT tagger: each word tagged from its first WordPiece (words split into several pieces, a
word the tokenizer empties read as [UNK]), softmax and CRF outputs over words, padding
independence, windows for sentences longer than the model's positions (every word still tagged,
the record says "truncated"), layers for train.layer_lr_decay, save -> load; and the shared
sentence splitter counting WordPieces."""

from __future__ import annotations

import pytest
import torch

from dlcli import api, checkpoint
from dlcli.models.bert_tagger import BertTagger
from dlcli.tasks.tag import TagTask
from dlcli.text.tagging import split_long
from dlcli.text.vocab import PAD, UNK
from dlcli.text.wordpiece import UNK as PIECE_UNK

pytest.importorskip("tokenizers")

TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
CORPUS = ["the cat sat on the mat", "alice met bob in paris", "the dogs ran to rome today"] * 8
ARCHITECTURE = {"hidden_size": 16, "num_layers": 2, "num_heads": 2, "intermediate_size": 32}


@pytest.fixture(scope="module")
def vocab():
    from dlcli.text.vocabularies import TYPES

    return TYPES["bert_wordpiece"].build(CORPUS, vocab_size=70, min_freq=1)


def make_task(vocab, window: int = 30) -> TagTask:
    return TagTask(vocab, TAGS, "bio", "word", [PAD, UNK], [], False, window)


def make_model(task: TagTask, crf: bool, positions: int = 32) -> BertTagger:
    torch.manual_seed(0)
    return BertTagger(*task.model_sizes(), **ARCHITECTURE, max_position_embeddings=positions, dropout=0.0,
                      cls_id=task.vocab.cls_id, sep_id=task.vocab.sep_id, crf=crf)


def test_each_word_points_at_its_first_piece(vocab):
    task = make_task(vocab)
    words = ["Alice", "sitting", "\x00", "cats", "U.S.", "paris"]
    piece = task.encode([words])[0]
    pieces = [vocab.token_name(i) for i in piece["ids"]]
    split = {w: vocab.tokenize(w) for w in words}
    assert len(split["sitting"]) > 1 and len(split["U.S."]) > 1 and split["\x00"] == []  # the cases under test
    expected, first = [], []
    for w in words:
        first.append(len(expected))
        expected += split[w] or [PIECE_UNK]  # an emptied word reads as [UNK]
    assert pieces == expected and piece["first"] == first and piece["tokens"] == words
    assert piece["length"] == len(expected)


@pytest.mark.parametrize("crf", [False, True])
def test_scores_come_from_first_pieces_and_the_loss_is_over_words(vocab, crf):
    task = make_task(vocab)
    model = make_model(task, crf).eval()
    sentences = [["alice", "sitting", "in", "paris"], ["bob", "unaffable"]]
    batch = task._batch(task.encode(sentences))
    scores = model(batch["ids"], batch["mask"], batch["first"])
    assert scores.shape == (2, 4, len(TAGS))
    alone = model(*(task._batch(task.encode(sentences[1:]))[k] for k in ("ids", "mask", "first")))
    torch.testing.assert_close(scores[1, :2], alone[0], rtol=1e-5, atol=1e-5)  # padding changes nothing

    from dlcli.models.bert import with_cls_sep
    x, real = with_cls_sep(batch["ids"], batch["mask"], vocab.cls_id, vocab.sep_id, vocab.pad_id)
    hidden = model.bert.encode(x, real)
    row, word = 0, 1  # "sitting": several pieces, its first one scores it
    position = batch["first"][row, word] + 1
    torch.testing.assert_close(scores[row, word], model.output(hidden[row, position]))

    model.train()
    tags = torch.tensor([[1, 0, 0, 3], [1, 0, 0, 0]])
    loss = task.loss(model, {**batch, "tags": tags})
    assert torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    assert (model.crf is not None) == crf
    paths = model.decode(scores.detach(), batch["word_mask"])
    assert [len(p) for p in paths] == [4, 2]


def test_the_crf_follows_the_tag_scheme(vocab):
    task = make_task(vocab)
    model = make_model(task, crf=True).eval()
    scores = torch.zeros(1, 3, len(TAGS))
    scores[:, :, TAGS.index("I-PER")] = 5.0
    assert model.decode(scores, torch.ones(1, 3, dtype=torch.bool))[0][0] != TAGS.index("I-PER")
    unconstrained = BertTagger(*task.model_sizes(), **ARCHITECTURE, max_position_embeddings=32, cls_id=2, sep_id=3,
                               crf=True, constrained=False)
    assert unconstrained.decode(scores, torch.ones(1, 3, dtype=torch.bool))[0] == [TAGS.index("I-PER")] * 3


def test_a_sentence_longer_than_the_window_is_tagged_whole_in_windows(vocab):
    task = make_task(vocab, window=6)  # 8 positions, less [CLS] and [SEP]
    model = make_model(task, crf=True, positions=8).eval()
    words = "alice sitting in paris , bob unaffable sat on the mat".split()
    pieces = task.encode([words])
    assert len(pieces) > 1 and all(len(p["ids"]) <= 6 for p in pieces)
    assert [t for p in pieces for t in p["tokens"]] == words  # every word, once, in order
    records = task.predict(model, [0, 1], [" ".join(words), "alice sat"], {"tokenize": "whitespace"})
    assert records[0]["tokens"] == words and len(records[0]["tags"]) == len(words)
    assert records[0]["truncated"] == {"length": pieces[0]["length"], "window": 6, "windows": len(pieces)}
    assert "truncated" not in records[1] and len(records[1]["tags"]) == 2
    huge = task.encode([["a" * 40, "cat"]])  # a word of more pieces than a window keeps those that fit
    assert [len(p["ids"]) for p in huge] == [6, 1]


def test_split_long_counts_costs():
    tokens = ["a", "b", "c", ",", "d", "e"]
    assert split_long(6, 5, tokens) == [(0, 4), (4, 6)]  # after the comma
    assert split_long(6, 5, tokens, [1] * 6) == split_long(6, 5, tokens)
    assert split_long(6, 5, tokens, [2, 2, 1, 1, 1, 1]) == [(0, 3), (3, 6)]
    assert split_long(6, 5, tokens, [6, 1, 1, 1, 1, 1]) == [(0, 1), (1, 6)]  # too long for a window: alone
    assert split_long(6, 20, tokens, [3] * 6) == [(0, 6)]


def test_layers_partition_the_parameters(vocab):
    model = make_model(make_task(vocab), crf=True)
    layers = model.layer_groups()
    assert len(layers) == 1 + 2 + 1  # embeddings, two layers, the head (output and CRF)
    ids = [id(p) for layer in layers for p in layer]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in model.parameters()}
    assert any(p is model.crf.transitions for p in layers[-1])


def test_missing_architecture_is_named(vocab):
    task = make_task(vocab)
    with pytest.raises(ValueError, match="hidden_size.*data.init"):
        BertTagger(*task.model_sizes(), cls_id=2, sep_id=3)


def test_checkpoint_round_trip(vocab, tmp_path):
    task = make_task(vocab)
    model = make_model(task, crf=True)
    with torch.no_grad():
        model.crf.transitions.add_(0.3)
    model.eval()
    kwargs = {**ARCHITECTURE, "max_position_embeddings": 32, "cls_id": vocab.cls_id, "sep_id": vocab.sep_id,
              "dropout": 0.0, "crf": True}
    path = tmp_path / "m.pt"
    checkpoint.save(path, {"task": "tag", "recipe": {"task": "tag"}, "model": {"type": "bert", "kwargs": kwargs},
                           **task.payload(), "state_dict": model.state_dict(), "metrics": {}})
    loaded = api.load_model(path)
    assert loaded.task.subwords and loaded.task.piece_length == 30
    text = ["alice sitting in paris today", "bob"]
    options = {"tokenize": "whitespace"}
    assert loaded.predict([0, 1], text, options) == task.predict(model, [0, 1], text, options)
    batch = task._batch(task.encode([t.split() for t in text]))
    with torch.no_grad():
        assert torch.equal(loaded.model(batch["ids"], batch["mask"], batch["first"]),
                           model(batch["ids"], batch["mask"], batch["first"]))
