"""Random number generators outside torch's global one, seeded and checkpointed by runs.

Libraries wrapped by blocks may keep their own RNGs (Sionna keeps Python, NumPy and
torch generators in ``sionna.phy.config``). A block package registers a provider here;
the runner seeds every provider at the start of a run and saves and restores their
states in checkpoints, so resumed runs stay exact. The engine knows no library by name.
"""
from __future__ import annotations

from typing import Any, Callable

_PROVIDERS: dict[str, tuple[Callable[[int], None], Callable[[], Any], Callable[[Any], None]]] = {}


def register_rng(name: str, seed: Callable[[int], None], get_state: Callable[[], Any],
                 set_state: Callable[[Any], None]) -> None:
    """Register an external RNG. States must be plain data or tensors (weights-only loadable)."""
    _PROVIDERS[name] = (seed, get_state, set_state)


def seed_all(seed: int) -> None:
    for i, (name, (seed_fn, _, _)) in enumerate(sorted(_PROVIDERS.items())):
        seed_fn(int(seed) + 101 * (i + 1))


def get_states() -> dict:
    return {name: get() for name, (_, get, _) in _PROVIDERS.items()}


def set_states(states: dict) -> None:
    for name, state in (states or {}).items():
        if name in _PROVIDERS:
            _PROVIDERS[name][2](state)


def providers() -> list[str]:
    return sorted(_PROVIDERS)
