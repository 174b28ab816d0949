"""Early stopping with best-weight restore: the one rule that training and fine-tuning share.

An epoch improves on the best so far only when its score is strictly lower: a tie is not an
improvement, so the first of equal epochs is kept. After ``patience`` epochs in a row without
an improvement, training stops. The best epoch's weights are copied when it happens and can be
put back at the end.

:class:`contractive.train.Trainer` (``config.patience``) and
:func:`contractive.evaluate.finetune` (``patience=``) both step an :class:`EarlyStopping`; the
counters live in :class:`StoppingState`, which the trainer's checkpoint stores as JSON (its
best weights are stored as tensors).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor, nn

__all__ = ["EarlyStopping", "StoppingState"]


@dataclass
class StoppingState:
    """The counters of :class:`EarlyStopping`, JSON-serialisable.

    Attributes
    ----------
    best_val : float or None
        The lowest score so far (``None`` before the first epoch).
    best_epoch : int or None
        The 1-based epoch that reached it first.
    bad_epochs : int
        Epochs in a row since then without a strict improvement.
    stopped_early : bool
        ``patience`` ran out.
    """

    best_val: float | None = None
    best_epoch: int | None = None
    bad_epochs: int = 0
    stopped_early: bool = False


@dataclass
class EarlyStopping:
    """Track the best epoch, keep its weights, and say when patience has run out.

    Parameters
    ----------
    patience : int
        Epochs without a strict improvement before stopping; 0 never stops (the best epoch is
        still tracked and its weights kept).
    state : StoppingState
        Where the counters live; a trainer passes its own (checkpointed) state.

    Attributes
    ----------
    best_weights : dict of str to Tensor or None
        A copy of the model's ``state_dict()`` at the best epoch.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Linear(2, 1)
    >>> stopper = EarlyStopping(patience=2)
    >>> for epoch, score in enumerate([0.5, 0.3, 0.3, 0.4], start=1):
    ...     with torch.no_grad():
    ...         _ = model.bias.fill_(float(epoch))  # the weights of this epoch
    ...     if stopper.step(epoch, score, model):
    ...         break
    >>> stopper.state.best_epoch, stopper.state.stopped_early, epoch
    (2, True, 4)
    >>> stopper.restore(model)
    True
    >>> model.bias.item()  # the weights of epoch 2, the first with 0.3
    2.0
    """

    patience: int = 0
    state: StoppingState = field(default_factory=StoppingState)
    best_weights: dict[str, Tensor] | None = field(default=None, repr=False)

    def step(self, epoch: int, score: float, model: nn.Module) -> bool:
        """Record ``epoch``'s ``score`` (lower is better); return whether to stop now.

        On a strict improvement the model's weights are copied (detached clones).
        """
        s = self.state
        if s.best_val is None or score < s.best_val:
            s.best_val, s.best_epoch, s.bad_epochs = score, epoch, 0
            self.best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            s.bad_epochs += 1
            if self.patience and s.bad_epochs >= self.patience:
                s.stopped_early = True
        return s.stopped_early

    def restore(self, model: nn.Module) -> bool:
        """Load the best epoch's weights into ``model``; ``False`` when none were kept."""
        if self.best_weights is None:
            return False
        model.load_state_dict(self.best_weights)
        return True
