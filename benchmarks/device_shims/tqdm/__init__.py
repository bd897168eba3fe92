"""A stand-in for ``tqdm`` on a GPU lease whose Python lacks it (no network, no installs there).

``decs.train`` imports ``tqdm.auto.tqdm`` for its progress bars. ``benchmarks/device_queue.py``
puts this folder on ``PYTHONPATH`` only when ``import tqdm`` fails, and says so in its log. The
queue runs every job with ``--quiet`` (bars disabled), so nothing is lost: this class accepts
the calls ``decs.train`` makes and draws nothing.
"""


class tqdm:  # noqa: N801 - the name the real package uses
    """A progress bar that draws nothing: iterates over ``iterable`` and ignores the rest."""

    def __init__(self, iterable=None, *args, **kwargs):
        self.iterable = iterable

    def __iter__(self):
        return iter(self.iterable if self.iterable is not None else ())

    def update(self, n=1):
        """Ignored."""

    def set_postfix(self, *args, **kwargs):
        """Ignored."""

    def close(self):
        """Ignored."""
