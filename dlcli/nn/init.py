"""Weight initialisation shared by the Transformer models (GPT-2's and BERT's: Linear and Embedding
weights N(0, 0.02), biases zero; LayerNorm keeps torch's 1 and 0)."""

from __future__ import annotations

from torch import nn


def normal_002(module: nn.Module) -> None:
    """For `model.apply`: one module's weights as GPT and BERT initialise them."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
