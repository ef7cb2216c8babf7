"""Compiled CPU training loops (numba) for models whose updates are sparse and tiny per example,
where a batched autograd step spends its time materialising gradients, not computing."""
