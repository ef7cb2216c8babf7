"""A GPT fine-tuned to classify (Radford et al. 2018, section 3.2).

The text is read after an end token (`pad_id`: for a byte-level BPE vocabulary `<|endoftext|>`,
the token every pretraining line followed), and the state of its last token (`pooling: last`),
or the mean of its tokens' states (`mean`), goes through dropout and a linear layer. The paper
appends a new "extract" token and classifies from it; a token new to the model starts with no
use for the text before it, while the last token's state was trained to predict what follows
and so sums up the text (on a pretraining corpus of independent lines, an end token's state
learns to ignore the text before it, which makes it useless to classify from). With
`lm_weight` > 0 the language-model loss on the same text (every token predicted from those
before it) is added to the task's loss with that weight while training: the paper's auxiliary
objective (lambda 0.5).

The architecture knobs default to None: a run that starts from a pretrained `gpt` (`data.init`)
takes them from it (the classify task fills them in, and `start_from` copies the weights);
without one the recipe must give them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dlcli.models.classifier import ClassifierDefaults, check_same_architecture
from dlcli.models.gpt import GPT
from dlcli.nn.pooling import masked_mean

POOLINGS = ("last", "mean")


class GPTClassifier(ClassifierDefaults, nn.Module):
    pretrained = "gpt"

    def __init__(self, vocab_size: int, num_labels: int, pad_id: int, *, context_length: int | None = None,
                 embedding_dim: int | None = None, num_layers: int | None = None, num_heads: int | None = None,
                 ffn_dim: int | None = None, activation: str = "gelu_tanh", layer_norm_eps: float = 1e-5,
                 dropout: float = 0.1, lm_weight: float = 0.5, pooling: str = "last"):
        super().__init__()
        missing = [k for k, v in (("context_length", context_length), ("embedding_dim", embedding_dim),
                                  ("num_layers", num_layers), ("num_heads", num_heads)) if v is None]
        if missing:
            raise ValueError(f"{', '.join(missing)}: give them, or start from a pretrained gpt (data.init)")
        if context_length < 2:
            raise ValueError(f"context_length: at least 2 (the end token and one of text), got {context_length}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling: {pooling!r} is not one of {', '.join(POOLINGS)}")
        if lm_weight < 0:
            raise ValueError(f"lm_weight: must be 0 or more, got {lm_weight}")
        self.gpt = GPT(vocab_size, context_length=context_length, embedding_dim=embedding_dim, num_layers=num_layers,
                       num_heads=num_heads, ffn_dim=ffn_dim, dropout=dropout, activation=activation,
                       layer_norm_eps=layer_norm_eps)
        self.architecture = {"context_length": context_length, "embedding_dim": embedding_dim, "num_layers": num_layers,
                       "num_heads": num_heads, "ffn_dim": ffn_dim or 4 * embedding_dim, "activation": activation,
                       "layer_norm_eps": layer_norm_eps}
        self.end_id = pad_id
        self.max_tokens = context_length - 1
        self.pooling = pooling
        self.drop = nn.Dropout(dropout)
        self.output = nn.Linear(embedding_dim, num_labels)
        nn.init.normal_(self.output.weight, std=0.02)
        nn.init.zeros_(self.output.bias)
        self.lm_weight = lm_weight
        self._lm_loss: torch.Tensor | None = None

    @property
    def embedding(self) -> nn.Embedding:
        """The token embedding (data.vectors fills it)."""
        return self.gpt.token

    def layer_groups(self) -> list[list]:
        """The embeddings, each block, then the final LayerNorm and the output layer."""
        g = self.gpt
        return [[*g.token.parameters(), *g.position.parameters()], *(list(block.parameters()) for block in g.blocks),
                [*g.norm.parameters(), *self.output.parameters()]]

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        ids, mask = ids[:, : self.max_tokens], mask[:, : self.max_tokens]  # the positions end here
        B, T = ids.shape
        lengths = mask.sum(1)
        x = torch.cat([torch.full((B, 1), self.end_id, dtype=ids.dtype, device=ids.device),
                       ids.masked_fill(~mask, self.end_id)], 1)  # (B, T + 1)
        h = self.gpt.hidden(x)  # right padding: causal attention keeps it out of the real positions
        if self.training and self.lm_weight > 0:
            targets = x[:, 1:].masked_fill(~mask, -100)
            logits = self.gpt.logits(h[:, :-1])
            self._lm_loss = self.lm_weight * F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                                             ignore_index=-100)
        if self.pooling == "last":  # an empty text: the end token's state
            pooled = h[torch.arange(B, device=ids.device), lengths]
        else:
            pooled = masked_mean(h, torch.cat([(lengths == 0)[:, None], mask], 1))  # an empty text: the end token
        return self.output(self.drop(pooled))

    def extra_loss(self) -> torch.Tensor | None:
        loss, self._lm_loss = self._lm_loss, None
        return loss

    def start_from(self, pretrained: nn.Module, kwargs: dict) -> None:
        if not isinstance(pretrained, GPT):
            raise ValueError(f"a gpt classifier starts from a gpt language model, not a {type(pretrained).__name__}")
        check_same_architecture(self.architecture, {**kwargs, "ffn_dim": kwargs.get("ffn_dim")
                                              or 4 * kwargs.get("embedding_dim", 0)})
        self.gpt.load_state_dict(pretrained.state_dict())
