"""`dlcli convert gpt2`: a small random GPT-2 made by transformers, converted from safetensors and
from pytorch_model.bin, gives transformers' logits, greedy continuations, tokens, scores and
perplexity; the CLI converts and generates; broken folders are refused naming the file."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from helpers import assert_fails, assert_ok

from dlcli import checkpoint
from dlcli.convert.gpt2 import convert_gpt2, read_safetensors
from dlcli.errors import DataError
from dlcli.loading import load_model

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

EOT = "<|endoftext|>"
SENTENCES = ["the cat sat on the mat", "the dog ran to the park and home", "hello world, the quick brown fox",
             "numbers 12 345 and punctuation!", "café naïve résumé über straße"]
TEXTS = ["the cat", "Hello world", "naïve café 東京", "emoji 🙂👍🏽 and   spaces\tand tab", f"two{EOT}texts", ""]
PROMPTS = ["the cat", "a dog ran to", "Hello", "über 🙂"]


def write_tokenizer(folder) -> int:
    """A byte-level BPE learned from SENTENCES, saved as GPT-2's vocab.json + merges.txt; its size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer, tok.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=[EOT], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(SENTENCES * 5, trainer=trainer)
    tok.model.save(str(folder))
    return tok.get_vocab_size()


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    """(reference model, folders): one random GPT-2 saved as model.safetensors ("st") and as an
    original-style pytorch_model.bin ("bin": no "transformer." prefix, attention mask buffers, a tied
    lm_head.weight, and reorder_and_upcast_attn, which computes the same scores)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    root = tmp_path_factory.mktemp("gpt2")
    folders = {"st": root / "st", "bin": root / "bin"}
    for folder in folders.values():
        folder.mkdir()
    size = write_tokenizer(folders["st"])
    eot = json.loads((folders["st"] / "vocab.json").read_text(encoding="utf-8"))[EOT]
    config = GPT2Config(vocab_size=size, n_positions=64, n_embd=32, n_layer=2, n_head=4, bos_token_id=eot,
                        eos_token_id=eot)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(config).eval()
    with torch.no_grad():  # every weight away from its initial value, so that a swapped one shows
        for name, p in model.named_parameters():
            norm_scale = "ln_" in name and name.endswith("weight")
            p.copy_(1 + 0.1 * torch.randn_like(p) if norm_scale else 0.2 * torch.randn_like(p))
    model.save_pretrained(folders["st"])
    config.reorder_and_upcast_attn = True
    config.save_pretrained(folders["bin"])
    state = {k.removeprefix("transformer."): v for k, v in model.state_dict().items()}
    for i in range(config.n_layer):
        state[f"h.{i}.attn.bias"] = torch.tril(torch.ones(64, 64, dtype=torch.bool)).view(1, 1, 64, 64)
    torch.save(state, folders["bin"] / "pytorch_model.bin")
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(folders["st"] / name, folders["bin"] / name)
    return model, folders


def converted(folder, out):
    checkpoint.save(out, convert_gpt2([folder]))
    return load_model(out)


@pytest.mark.parametrize("layout", ["st", "bin"])
def test_logits_and_greedy_continuations_match_transformers(gpt2, tmp_path, layout):
    from transformers import GPT2LMHeadModel

    model, folders = gpt2
    if layout == "bin":  # transformers reads the file back, with the attention that the flag changes
        model = GPT2LMHeadModel.from_pretrained(folders["bin"], attn_implementation="eager").eval()
        assert model.config.reorder_and_upcast_attn
    loaded = converted(folders[layout], tmp_path / "gpt2.pt")
    assert loaded.data["converted_from"][-1] == ("model.safetensors" if layout == "st" else "pytorch_model.bin")
    ids = torch.randint(0, model.config.vocab_size, (3, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        theirs, ours = model(ids).logits, loaded.model(ids)
    assert ours.shape == theirs.shape
    assert (ours - theirs).abs().max().item() < 1e-4
    assert theirs.std().item() > 1  # the scores are far from flat, so agreeing means something

    task, eot = loaded.task, model.config.eos_token_id
    records = task.generate(loaded.model, list(range(len(PROMPTS))), PROMPTS, {"temperature": 0, "max_new_tokens": 20})
    lengths = []
    for prompt, record in zip(PROMPTS, records):
        ids = torch.tensor([task.prompt_ids(prompt)])
        assert ids[0, 0].item() == eot
        out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=20,
                             eos_token_id=eot, pad_token_id=eot)[0, ids.shape[1]:].tolist()
        new = out[:out.index(eot)] if eot in out else out  # transformers pads a row after its eos
        assert record["tokens"] == [task.vocab.token_name(i) for i in new], prompt
        assert record["finish_reason"] == ("eos" if eot in out else "length")
        lengths.append(len(new))
    assert max(lengths) == 20  # at least one row is a whole continuation, not an early end


def test_tokenization_matches_transformers(gpt2):
    from transformers import GPT2TokenizerFast

    _, folders = gpt2
    theirs = GPT2TokenizerFast.from_pretrained(folders["st"])
    ours = convert_gpt2([folders["st"]])
    from dlcli.text.vocabularies import from_dict

    vocab = from_dict(ours["vocab"])
    assert vocab.size == len(theirs) and vocab.eos_id == theirs.eos_token_id
    for text in TEXTS:
        ids = vocab.encode(text)
        assert ids == theirs.encode(text), text
        assert vocab.tokenize(text) == theirs.tokenize(text), text
        assert vocab.decode(ids) == text.replace(EOT, "")  # byte-level: everything round-trips
    assert max(vocab.encode("emoji 🙂")) < vocab.size


def test_cli_converts_then_generates_scores_and_describes(cli, gpt2, tmp_path):
    model, folders = gpt2
    out = tmp_path / "gpt2.pt"
    result = cli("convert", "gpt2", folders["st"], "-o", out)
    assert_ok(result)
    summary = result.json()
    assert summary["task"] == "lm" and summary["model"] == "gpt"
    assert summary["parameters"] == model.num_parameters()  # the tied output layer counted once

    generated = cli("generate", out, "--prompt", "the cat", "--temperature", "0", "--max-new-tokens", "12")
    assert_ok(generated)
    task = load_model(out).task
    ids = torch.tensor([task.prompt_ids("the cat")])
    eot = model.config.eos_token_id
    theirs = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=12,
                            eos_token_id=eot, pad_token_id=eot)[0, ids.shape[1]:].tolist()
    theirs = theirs[:theirs.index(eot)] if eot in theirs else theirs
    assert generated.json()["text"] == task.vocab.decode(theirs)

    # scoring: each line after an end token, each followed by one; a single window of 64 covers the file
    lines = ["the cat sat on the mat", "hello world"]
    (tmp_path / "text.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    stream = [eot] + [i for line in lines for i in (*task.vocab.encode(line), eot)]
    assert len(stream) <= 64
    with torch.no_grad():
        logits = model(torch.tensor([stream[:-1]])).logits[0]
    losses = torch.nn.functional.cross_entropy(logits, torch.tensor(stream[1:]), reduction="none")
    evaluated = cli("evaluate", out, tmp_path / "text.txt")
    assert_ok(evaluated)
    assert evaluated.json()["n_tokens"] == len(stream) - 1
    assert evaluated.json()["loss"] == pytest.approx(losses.mean().item(), abs=1e-4)
    first = len(task.vocab.encode(lines[0])) + 1
    predicted = cli("predict", out, stdin=(lines[0] + "\n").encode())
    assert_ok(predicted)
    assert predicted.records()[0]["loss"] == pytest.approx(losses[:first].mean().item(), abs=1e-4)

    info = cli("info", out)
    assert_ok(info)
    described = info.json()
    assert described["recipe"]["vocab"]["type"] == "byte_bpe" and described["vocab"]["size"] == model.config.vocab_size
    assert described["model"]["kwargs"]["context_length"] == 64


def test_safetensors_reader_matches_the_package(tmp_path):
    safetensors = pytest.importorskip("safetensors.torch")
    tensors = {"a": torch.randn(3, 5), "half": torch.randn(4, 2).half(), "bf": torch.randn(7).bfloat16(),
               "scalar": torch.tensor(2.5), "empty": torch.zeros(0, 3)}
    path = tmp_path / "t.safetensors"
    safetensors.save_file(tensors, str(path), metadata={"format": "pt"})
    read = read_safetensors(path)
    assert set(read) == set(tensors)
    for name, tensor in tensors.items():
        expected = tensor.float() if tensor.dtype == torch.bfloat16 else tensor
        assert read[name].dtype == expected.dtype and torch.equal(read[name], expected), name
    path.write_bytes(path.read_bytes()[:-6])
    with pytest.raises(DataError, match="do not fit the file"):
        read_safetensors(path)
    path.write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{nope")
    with pytest.raises(DataError, match="not a safetensors file"):
        read_safetensors(path)


def copy_folder(folders, tmp_path, name="broken"):
    target = tmp_path / name
    shutil.copytree(folders["st"], target)
    return target


def test_missing_files_are_named(cli, gpt2, tmp_path):
    _, folders = gpt2
    no_config = copy_folder(folders, tmp_path, "no_config")
    (no_config / "config.json").unlink()
    assert_fails(cli("convert", "gpt2", no_config, "-o", tmp_path / "x.pt"), 1, "no config.json", "n_embd")
    no_merges = copy_folder(folders, tmp_path, "no_merges")
    (no_merges / "merges.txt").unlink()
    assert_fails(cli("convert", "gpt2", no_merges, "-o", tmp_path / "x.pt"), 1, "no merges.txt", "BPE merges")
    no_weights = copy_folder(folders, tmp_path, "no_weights")
    (no_weights / "model.safetensors").unlink()
    assert_fails(cli("convert", "gpt2", no_weights, "-o", tmp_path / "x.pt"), 1,
                 "no model.safetensors or pytorch_model.bin")
    assert not (tmp_path / "x.pt").exists()


@pytest.mark.parametrize(("change", "message"), [
    ({"scale_attn_by_inverse_layer_idx": True}, "scale_attn_by_inverse_layer_idx true"),
    ({"activation_function": "silu"}, "activation_function 'silu'"),
    ({"model_type": "gpt_neo"}, "is not GPT-2"),
    ({"vocab_size": 999}, "vocab_size is 999"),
    ({"n_layer": 3}, "weights are missing"),
    ({"n_inner": 64}, "does not fit the model"),
    ({"eos_token_id": 5}, "eos_token_id is 5"),
])
def test_configs_dlcli_cannot_follow_are_refused(gpt2, tmp_path, change, message):
    _, folders = gpt2
    folder = copy_folder(folders, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(DataError, match=message):
        convert_gpt2([folder])


def test_an_untied_output_layer_is_refused(gpt2, tmp_path):
    _, folders = gpt2
    folder = copy_folder(folders, tmp_path)
    (folder / "model.safetensors").unlink()
    state = torch.load(folders["bin"] / "pytorch_model.bin", weights_only=True)
    state["lm_head.weight"] = state["wte.weight"] + 1
    torch.save(state, folder / "pytorch_model.bin")
    with pytest.raises(DataError, match="lm_head.weight differs"):
        convert_gpt2([folder])
