"""Endless, resumable training batches from an epoch-shuffled DataLoader."""

from typing import Any, Iterator, List

from ..utils.errors import ConfigError


class EpochBatches:
    """Endless batches from a DataLoader whose sampler/dataset reshuffle by epoch.

    Epoch ``e`` always sees the same order (``set_epoch(e)`` on the sampler and the dataset),
    and starting at iteration ``k`` skips the first ``k mod len`` index batches of its epoch
    without loading them, so a resumed run reads exactly the batches an uninterrupted one would.
    """

    def __init__(self, loader: Any, start_iter: int = 0) -> None:
        self.loader = loader
        self.sampler = loader.batch_sampler
        self.per_epoch = len(loader)
        if self.per_epoch == 0:
            raise ConfigError("the training DataLoader yields no batch: use a smaller "
                              "dataset.train.batch_size or a bigger filelist")
        self.epoch, skip = divmod(start_iter, self.per_epoch)
        self._start(skip)

    def _start(self, skip: int) -> None:
        from ..datasets.builder import set_loader_epoch
        self.loader.batch_sampler = self.sampler
        set_loader_epoch(self.loader, self.epoch)
        self.loader.batch_sampler = _SkipFirst(self.sampler, skip) if skip else self.sampler
        self._iter = iter(self.loader)

    def close(self) -> None:
        """Stop the current epoch's reader (training may end mid-epoch)."""
        from ..datasets.builder import close_iterator
        close_iterator(self._iter)

    def __next__(self) -> Any:
        try:
            return next(self._iter)
        except StopIteration:
            self.epoch += 1
            self._start(0)
            return next(self._iter)


class _SkipFirst:
    """A batch sampler that drops the first ``skip`` index batches of ``inner``."""

    def __init__(self, inner: Any, skip: int) -> None:
        self.inner, self.skip = inner, skip

    def __iter__(self) -> Iterator[List[int]]:
        for i, indices in enumerate(self.inner):
            if i >= self.skip:
                yield indices

    def __len__(self) -> int:
        return max(0, len(self.inner) - self.skip)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
