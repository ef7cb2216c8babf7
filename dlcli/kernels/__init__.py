"""Compiled CPU training loops for models whose updates are sparse and tiny per example, where a
batched autograd step spends its time materialising gradients, not computing. word2vec's is C
(built on install, see setup.py); fastText's and GloVe's are numba, which costs about 130 MB of
resident memory once loaded (docs/benchmarks.md)."""
