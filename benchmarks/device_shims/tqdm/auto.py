"""``from tqdm.auto import tqdm`` for the stand-in package (see ``__init__.py``)."""
from . import tqdm

__all__ = ["tqdm"]
