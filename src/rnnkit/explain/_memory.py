"""Sizes an explain experiment can hold: each has a measured estimate of its peak memory,
and a size past :data:`MEMORY_LIMIT` is refused in one line before any work (past it the
process was killed by the system, exit 137, with no message)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

MEMORY_LIMIT = 2 * 2**30  # bytes: a generous bound for an explanatory experiment


def largest(fits: Callable[[int], bool], low: int) -> int:
    """The largest v >= ``low`` with ``fits(v)``, for a ``fits`` true up to a point and
    false after it; ``low`` must fit."""
    high = 2 * low + 1
    while fits(high):
        low, high = high, 2 * high
    while high - low > 1:  # low fits, high does not
        mid = (low + high) // 2
        low, high = (mid, high) if fits(mid) else (low, mid)
    return low


def check(
    owner: str,
    sizes: Sequence[tuple[str, int, int]],
    estimate: Callable[..., int],
    rule: str,
    *,
    flags: bool = False,
    shown: dict[str, str] | None = None,
) -> None:
    """Refuse ``sizes`` whose ``estimate`` exceeds :data:`MEMORY_LIMIT`, naming one of them.

    ``sizes`` are (name, value, least) in the order checked: the k-th is bounded with the
    ones before it at their values and the ones after at their least, so the last is
    bounded at exactly the other sizes given. ``estimate`` takes the values in that order.
    With ``flags`` the names are command-line flags, repeated before the value given.
    ``shown`` writes a value (a list of lengths) other than as its number.
    """
    shown = shown or {}
    values = [value for _, value, _ in sizes]
    for k, (name, value, _) in enumerate(sizes):
        trial = values[: k + 1] + [least for _, _, least in sizes[k + 1 :]]
        if estimate(*trial) <= MEMORY_LIMIT:
            continue

        def fits(v: int, k: int = k, trial: list[int] = trial) -> bool:
            return estimate(*trial[:k], v, *trial[k + 1 :]) <= MEMORY_LIMIT

        allowed = largest(fits, sizes[k][2])
        at = ", ".join(f"{n} {shown.get(n, v)}" for n, v, _ in sizes[:k])
        got = shown.get(name, str(value))
        raise ValueError(
            f"{owner}: {name} must be at most {allowed}{' at ' + at if at else ''} "
            f"(memory: {rule}); got {name + ' ' + got if flags else got}"
        )
