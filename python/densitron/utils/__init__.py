"""Utilities: seeding, session state, progress bars."""

from densitron.utils.naming import clear_session
from densitron.utils.progbar import Progbar
from densitron.utils.rng import set_random_seed

__all__ = ["Progbar", "clear_session", "set_random_seed"]
