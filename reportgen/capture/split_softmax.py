"""The split softmax of salesforce/awd-lstm-lm (`splitcross.SplitCrossEntropyLoss`), which its
`main.py` uses above 75,000 words, computed exactly as that criterion computes it.

The vocabulary is cut at `splits` into a head (the words before the first split) and K tail
clusters. The head's softmax runs over its own words and one extra entry per tail cluster,
made from `tail_vectors` (K, H) and `tail_bias` (K,). A tail word's log p is its cluster's
entry in that softmax plus its log p within the cluster's own softmax. The criterion reads
the entry of cluster k (1-based) at the head's column -k, so the first cluster takes the last
tail vector; that order is kept here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn


@dataclass
class SplitSoftmax:
    """What the split softmax needs beyond the decoder's weights, on the decoder's device."""

    starts: list[int]  # K cluster starts, ascending; a start past V leaves its cluster empty
    tail_t: torch.Tensor  # (H, K) the tail vectors, transposed
    tail_bias: torch.Tensor  # (K,)

    @classmethod
    def of(cls, model: nn.Module, device: torch.device) -> SplitSoftmax | None:
        """The split softmax of a `LayeredModel` with `splits`; None for a plain softmax."""
        starts = list(getattr(model, "splits", []) or [])
        if not starts:
            return None
        return cls(starts, model.tail_vectors.detach().T.to(device).contiguous(),
                   model.tail_bias.detach().to(device))

    def normalise_(self, logits: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """Turn the decoder's logits (S, V) into log p (S, V), in place; h (S, H) gives the
        tail clusters' entries in the head's softmax."""
        entries = torch.addmm(self.tail_bias, h.float(), self.tail_t)  # (S, K)
        k, vocabulary = entries.shape[1], logits.shape[1]
        head_end = min(self.starts[0], vocabulary)
        head_norm = torch.logsumexp(torch.cat([logits[:, :head_end], entries], dim=1), dim=1,
                                    keepdim=True)  # (S, 1)
        bounds = [min(start, vocabulary) for start in self.starts] + [vocabulary]
        for cluster in range(1, k + 1):
            words = logits[:, bounds[cluster - 1] : bounds[cluster]]  # (S, n_k)
            if words.shape[1]:
                entry = entries[:, k - cluster : k - cluster + 1] - head_norm  # (S, 1)
                words.sub_(torch.logsumexp(words, dim=1, keepdim=True) - entry)
        logits[:, :head_end].sub_(head_norm)
        return logits
