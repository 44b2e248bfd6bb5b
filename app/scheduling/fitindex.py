"""Find the first queued deployment that fits, without scanning the whole queue.

After an eviction the freed slack may let a deployment that was skipped earlier in the pass fit
(it ranks ahead of the preemptor, so it must go first). Rescanning every skipped deployment after
every eviction would be O(backlog * evictions); this min-tree over queue positions answers "leftmost
position below `hi` whose resources fit in `available`" by descending only into subtrees whose
per-dimension minimum fits. A subtree's minimum fitting is necessary, not sufficient, for one of its
entries to fit, so the search stays exact; in the usual case (little slack) it stops at the root.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.scheduling.resources import Resources

# Larger than any request: marks a position that holds nothing queued.
_ABSENT = 1 << 62

_Level = tuple[list[int], list[int], list[int]]


class FitIndex:
    """Positions 0..n-1, each holding the resources of a queued deployment or nothing."""

    def __init__(self, entries: Sequence[Resources | None]) -> None:
        size = 1
        while size < len(entries):
            size *= 2
        pad = [_ABSENT] * (size - len(entries))
        leaves: _Level = (
            [_ABSENT if e is None else e.cpu_millis for e in entries] + pad,
            [_ABSENT if e is None else e.ram_millis for e in entries] + pad,
            [_ABSENT if e is None else e.gpu for e in entries] + pad,
        )
        self._levels: list[_Level] = [leaves]
        level = leaves
        while len(level[0]) > 1:
            # map(min, ...) over pairs runs in C: building over 100k positions takes milliseconds.
            level = (
                list(map(min, level[0][0::2], level[0][1::2])),
                list(map(min, level[1][0::2], level[1][1::2])),
                list(map(min, level[2][0::2], level[2][1::2])),
            )
            self._levels.append(level)

    def set(self, position: int, resources: Resources | None) -> None:
        values = (
            (_ABSENT, _ABSENT, _ABSENT)
            if resources is None
            else (resources.cpu_millis, resources.ram_millis, resources.gpu)
        )
        index = position
        leaves = self._levels[0]
        for dim in range(3):
            leaves[dim][index] = values[dim]
        for depth in range(1, len(self._levels)):
            child, parent = self._levels[depth - 1], self._levels[depth]
            left = index & ~1
            index >>= 1
            changed = False
            for dim in range(3):
                a, b = child[dim][left], child[dim][left + 1]
                low = a if a < b else b
                if parent[dim][index] != low:
                    parent[dim][index] = low
                    changed = True
            if not changed:
                break  # the minima above are unchanged too

    def first_fit(self, available: Resources, hi: int) -> int | None:
        """The smallest position < `hi` whose resources fit in `available`, if any."""
        cpu, ram, gpu = available.cpu_millis, available.ram_millis, available.gpu
        stack = [(len(self._levels) - 1, 0)]
        while stack:
            depth, index = stack.pop()
            if index << depth >= hi:
                continue
            mins = self._levels[depth]
            if mins[0][index] > cpu or mins[1][index] > ram or mins[2][index] > gpu:
                continue
            if depth == 0:
                return index
            # Right child pushed first so the left one is searched first: the first hit is leftmost.
            stack.append((depth - 1, 2 * index + 1))
            stack.append((depth - 1, 2 * index))
        return None
