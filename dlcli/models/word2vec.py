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

from dlcli.models.embedding import EmbeddingTables, draw_generator

ARCHS = ("skipgram", "cbow")
LOSSES = ("negative", "hierarchical")
OUTPUTS = ("input", "sum")


class Word2Vec(EmbeddingTables):
    tables = {"embedding.weight": "embedding", "output": "output", "word_counts": "word_counts"}
    buffers = frozenset({"word_counts"})

    def __init__(self, vocab_size: int, *, embedding_dim: int = 100, arch: str = "skipgram",
                 loss: str = "negative", window: int = 5, negative: int = 5, sample: float = 1.0e-3,
                 cbow_mean: bool = True, output: str = "input"):
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
        rows = vocab_size - 1 if loss == "hierarchical" else vocab_size
        self.embedding = np.zeros((vocab_size, embedding_dim), np.float32)  # the word vectors (word2vec's syn0)
        self.output = np.zeros((rows, embedding_dim), np.float32)  # syn1neg, or syn1: the tree's inner nodes
        self.word_counts = np.zeros(vocab_size, np.int64)
        self._tables = None

    def fit_counts(self, counts: np.ndarray) -> None:
        """The counts, and word2vec.c's start: input rows uniform in (-0.5, 0.5) / dim, output rows 0."""
        self.word_counts[:] = counts
        self._tables = None
        draw_generator().random(self.embedding.shape, dtype=np.float32, out=self.embedding)
        self.embedding -= 0.5
        self.embedding /= self.embedding.shape[1]
        self.output[:] = 0.0

    def vectors(self) -> np.ndarray:
        return self.embedding + self.output if self.output_vectors == "sum" else self.embedding

    def _kernel_tables(self) -> dict:
        """Subsampling probabilities, the noise table or the Huffman tree: from the counts, once."""
        if self._tables is None:
            from dlcli.kernels import word2vec_sgd as k

            counts = self.word_counts
            tables = {"keep_prob": k.keep_probability(counts, self.sample) if self.sample else
                      np.ones(len(counts), np.float32)}
            if self.loss == "negative":
                tables["noise"] = k.noise_runs(counts)
            else:
                tables["hs_points"], tables["hs_codes"], tables["hs_depths"] = k.hs_tree(counts)
            self._tables = tables
        return self._tables

    def hogwild_step(self, batch: dict, lr: float, threads: int, seed: int) -> float:
        """One pass of the kernel over a batch of sentences (EmbedTask.collate_kernel), in place;
        returns the mean loss per prediction. `seed` (the trainer's, per step) seeds its random
        stream, so a resumed run draws the same samples."""
        from dlcli.kernels import word2vec_sgd as k

        loss, _, pairs = k.train_sentences(
            self.embedding, self.output, batch["ids"], batch["starts"],
            arch=k.SKIPGRAM if self.arch == "skipgram" else k.CBOW,
            loss=k.NEGATIVE if self.loss == "negative" else k.HIERARCHICAL,
            window=self.window, negative=self.negative, cbow_mean=self.cbow_mean, lr_start=lr, lr_end=lr,
            threads=threads, seed=seed, **self._kernel_tables())
        return loss / max(1, pairs)


class StaticVectors(EmbeddingTables):
    """Word vectors made elsewhere (`dlcli convert vectors`): a table, nothing to train."""

    tables = {"embedding.weight": "embedding"}

    def __init__(self, vocab_size: int, *, embedding_dim: int = 100):
        self.embedding = np.zeros((vocab_size, embedding_dim), np.float32)

    def vectors(self) -> np.ndarray:
        return self.embedding
