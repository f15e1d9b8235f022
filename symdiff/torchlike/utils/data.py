"""``torch.utils.data``: ``TensorDataset``, ``DataLoader`` (batches, shuffling from torchlike's
generator, so the order differs from PyTorch's for the same seed), ``random_split``."""

from __future__ import annotations

import numpy as np

from ..creation import default_generator
from ..functions import stack
from ..tensor import Tensor

__all__ = ["DataLoader", "Dataset", "Subset", "TensorDataset", "random_split"]


class Dataset:
    def __getitem__(self, index):
        raise NotImplementedError

    def __len__(self):
        raise NotImplementedError


class TensorDataset(Dataset):
    def __init__(self, *tensors):
        if any(len(t) != len(tensors[0]) for t in tensors):
            raise AssertionError("Size mismatch between tensors")
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self):
        return len(self.tensors[0])


class Subset(Dataset):
    def __init__(self, dataset, indices):
        self.dataset, self.indices = dataset, list(indices)

    def __getitem__(self, index):
        return self.dataset[self.indices[index]]

    def __len__(self):
        return len(self.indices)


def random_split(dataset, lengths, generator=None):
    n = len(dataset)
    if all(isinstance(x, float) for x in lengths) and abs(sum(lengths) - 1) < 1e-9:
        counts = [int(np.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        lengths = counts
    if sum(lengths) != n:
        raise ValueError("Sum of input lengths does not equal the length of the input dataset!")
    order = (generator or default_generator).rng.permutation(n)
    out, start = [], 0
    for k in lengths:
        out.append(Subset(dataset, order[start:start + k].tolist()))
        start += k
    return out


def _collate(items):
    first = items[0]
    if isinstance(first, tuple):
        return [_collate(list(parts)) for parts in zip(*items)]
    if isinstance(first, Tensor):
        return stack(items)
    return Tensor._make(np.asarray(items))


class DataLoader:
    """Mini-batches of a dataset; a ``TensorDataset`` is sliced with one index tensor per batch
    (one recorded operation, so a training step keeps one graph structure)."""

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, generator=None, **ignored):
        self.dataset, self.batch_size, self.shuffle, self.drop_last = dataset, batch_size, shuffle, drop_last
        self.generator = generator

    def __len__(self):
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        n = len(self.dataset)
        order = (self.generator or default_generator).rng.permutation(n) if self.shuffle else np.arange(n)
        for start in range(0, n, self.batch_size):
            idx = order[start:start + self.batch_size]
            if self.drop_last and len(idx) < self.batch_size:
                return
            if isinstance(self.dataset, TensorDataset):
                key = Tensor._make(idx.astype(np.int64))
                yield [t[key] for t in self.dataset.tensors]
            else:
                yield _collate([self.dataset[int(i)] for i in idx])
