"""What the classify task asks of every classifier, declared once with the values most take.

Each classify model lists `ClassifierDefaults` first among its bases and overrides what differs;
the task reads these attributes instead of asking a model what it can do.
"""

from __future__ import annotations


def check_same_architecture(ours: dict, theirs: dict) -> None:
    """Refuse a pretrained model (builder kwargs `theirs`) whose architecture differs from ours
    (`ours`: the knobs that fix the weights' shapes), naming the first knob that differs."""
    for key, value in ours.items():
        if key in theirs and theirs[key] != value:
            raise ValueError(f"model.{key}: {value!r} differs from the pretrained model's {theirs[key]!r}")


class ClassifierDefaults:
    min_length = 1  # inputs are padded to at least this many tokens (TextCNN: its widest window)
    output_activation = "softmax"  # "sigmoid": one independent probability per label (fastText's ova)
    bag_input = False  # True: forward_bags(flat ids, offsets) scores unpadded bags (FastText)
    word_attention = False  # True: attention(ids, mask) gives each token's weight (attn_lstm)
    max_tokens: int | None = None  # the most tokens the model reads at once (a transformer's positions)
    pretrained: str | None = None  # the model type of a language model (task lm) it can start from (data.init)

    def fit_labels(self, counts: list[int]) -> None:
        """Told the training label frequencies before training (hierarchical softmax builds its tree)."""

    def after_init_vectors(self) -> None:
        """Called once pretrained vectors have filled `embedding` (TextCNN's fixed channel copies them)."""

    def after_optimizer_step(self) -> None:
        """Called after each optimizer step (TextCNN's max-norm constraint)."""

    def layer_groups(self) -> list[list] | None:
        """The parameters in layers, input first, head last (train.layer_lr_decay), or None: the
        model is one block."""
        return None

    def extra_loss(self):
        """A loss the model adds to the task's, made by its last training forward pass (the GPT
        classifier's language-model objective), or None."""
        return None

    def start_from(self, pretrained, kwargs: dict) -> None:
        """Take the weights of a pretrained language model (data.init) of type `pretrained`, whose
        builder kwargs are `kwargs`; a ValueError says what does not fit."""
        raise ValueError("this classifier has no pretrained start")
