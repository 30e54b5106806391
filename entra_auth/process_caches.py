"""What entra_auth remembers in process memory, with one owner and one reset.

The hot path stays cheap by remembering things per process: validated tokens, principals,
per-caller rate windows, clients blocked for failing too often. Each module registers its
cache here with the settings it derives from, and a change of one of those settings
(``override_settings`` in tests included) empties the caches that derive from it. The token
validator is rebuilt on its own when ``entra_settings.generation`` moves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.core.signals import setting_changed
from django.dispatch import receiver

from .conf import SETTINGS_NAME

_caches: dict[str, tuple[Callable[[], None], frozenset[str]]] = {}


def register_process_cache(
    name: str, clear: Callable[[], None], derived_from: Iterable[str] = (SETTINGS_NAME,)
) -> None:
    """Own ``name``'s cache: ``clear`` empties it when a setting in ``derived_from`` changes.

    Registering a name again replaces it.
    """
    _caches[name] = (clear, frozenset(derived_from))


@receiver(setting_changed, dispatch_uid="entra_auth.process_caches")
def _clear_on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    for clear, derived_from in list(_caches.values()):
        if setting in derived_from:
            clear()
