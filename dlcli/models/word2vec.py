"""word2vec (Mikolov et al., "Efficient Estimation of Word Representations in Vector Space" and
"Distributed Representations of Words and Phrases and their Compositionality", 2013).

Skip-gram or CBOW, each with negative sampling (noise from unigram^0.75) or hierarchical softmax
over a Huffman tree of word counts; frequent words subsampled (`sample`), dynamic windows. Its
vectors are the input rows (word2vec's syn0), or with `output: sum` and negative sampling the
input plus the output rows (syn0 + syn1neg), the "w + c" of Levy, Goldberg and Dagan ("Improving
Distributional Similarity with Lessons Learned from Word Embeddings", TACL 2015), as GloVe sums
its two tables. It trains with `train.optimizer: hogwild_sgd`: the compiled, lock-free per-word SGD of
dlcli/kernels/word2vec_sgd.py over every CPU thread, at the scheduled learning rate (the recipes
decay it linearly, as word2vec does).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from dlcli.models.embedding import EmbeddingDefaults

ARCHS = ("skipgram", "cbow")
LOSSES = ("negative", "hierarchical")
OUTPUTS = ("input", "sum")


class Word2Vec(EmbeddingDefaults, nn.Module):
    def __init__(self, vocab_size: int, *, embedding_dim: int = 100, arch: str = "skipgram",
                 loss: str = "negative", window: int = 5, negative: int = 5, sample: float = 1.0e-3,
                 cbow_mean: bool = True, output: str = "input"):
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"arch must be one of {', '.join(ARCHS)}, not {arch!r}")
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, not {loss!r}")
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, not {output!r}")
        if output == "sum" and loss != "negative":
            raise ValueError("output sum adds each word's output row, which only negative sampling has (hierarchical "
                             "softmax's output rows are the tree's inner nodes)")
        if window < 1 or embedding_dim < 1 or (loss == "negative" and negative < 1) or sample < 0:
            raise ValueError("window, embedding_dim and negative must be >= 1, sample >= 0")
        self.arch, self.loss, self.window, self.negative = arch, loss, window, negative
        self.sample, self.cbow_mean, self.output_vectors = sample, cbow_mean, output
        self.embedding = nn.Embedding(vocab_size, embedding_dim)  # the word vectors (word2vec's syn0)
        nn.init.uniform_(self.embedding.weight, -0.5 / embedding_dim, 0.5 / embedding_dim)
        rows = vocab_size - 1 if loss == "hierarchical" else vocab_size
        self.output = nn.Parameter(torch.zeros(rows, embedding_dim))  # syn1neg, or syn1: the tree's inner nodes
        self.register_buffer("word_counts", torch.zeros(vocab_size, dtype=torch.long))
        self._tables = None

    def fit_counts(self, counts: torch.Tensor) -> None:
        self.word_counts.copy_(counts)
        self._tables = None

    def vectors(self) -> torch.Tensor:
        return self.embedding.weight + self.output if self.output_vectors == "sum" else self.embedding.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        rows = self.embedding(ids)
        return rows + self.output[ids] if self.output_vectors == "sum" else rows

    def _kernel_tables(self) -> dict:
        """Subsampling probabilities, the noise table or the Huffman tree: from the counts, once."""
        if self._tables is None:
            from dlcli.kernels import word2vec_sgd as k

            counts = self.word_counts.numpy()
            tables = {"keep_prob": k.keep_probability(counts, self.sample) if self.sample else
                      np.ones(len(counts), np.float32)}
            if self.loss == "negative":
                tables["noise"] = k.noise_runs(counts)
            else:
                tables["hs_points"], tables["hs_codes"], tables["hs_depths"] = k.hs_tree(counts)
            self._tables = tables
        return self._tables

    def hogwild_step(self, batch: dict, lr: float, threads: int) -> float:
        """One pass of the kernel over a batch of sentences (EmbedTask.collate_kernel), in place;
        returns the mean loss per prediction. Its random stream is seeded from torch's, which the
        trainer seeds per step, so a resumed run draws the same samples."""
        from dlcli.kernels import word2vec_sgd as k

        seed = int(torch.randint(2**62, (1,)))
        with torch.no_grad():
            loss, _, pairs = k.train_sentences(
                self.embedding.weight.detach().numpy(), self.output.detach().numpy(), batch["ids"], batch["starts"],
                arch=k.SKIPGRAM if self.arch == "skipgram" else k.CBOW,
                loss=k.NEGATIVE if self.loss == "negative" else k.HIERARCHICAL,
                window=self.window, negative=self.negative, cbow_mean=self.cbow_mean, lr_start=lr, lr_end=lr,
                threads=threads, seed=seed, **self._kernel_tables())
        return loss / max(1, pairs)


class StaticVectors(EmbeddingDefaults, nn.Module):
    """Word vectors made elsewhere (`dlcli convert vectors`): a table, nothing to train."""

    def __init__(self, vocab_size: int, *, embedding_dim: int = 100):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim)

    def vectors(self) -> torch.Tensor:
        return self.embedding.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.embedding(ids)
