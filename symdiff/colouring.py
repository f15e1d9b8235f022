"""Graph colourings for compressed Jacobians and Hessians, and the recovery of each nonzero.

Jacobians: columns sharing no row get one colour (Curtis-Powell-Reid, a distance-2 colouring of the
bipartite graph). Cyclic colourings ``j mod k`` are tried first (banded patterns: optimal, O(nnz));
then greedy sweeps in several orders (natural, largest-first, smallest-last, incidence-degree,
DSATUR, seeded random), iterated-greedy passes that recolour class by class (never worse), and on
small patterns a tabu search for one colour fewer at a time.
Hessians: the better of that distance-2 colouring (with dense rows split off) and a star colouring
(Gebremedhin-Manne-Pothen: a proper colouring in which every path on four vertices uses three
colours), read with direct recovery: ``H[i, j]`` is product ``colour(j)`` at row ``i`` when no other
neighbour of ``i`` has that colour, else product ``colour(i)`` at row ``j``.
"""

from __future__ import annotations

import heapq

import numpy as np

from .errors import SymdiffError
from .ops import patterns as pat

RANDOM_ORDERS = 20  # extra greedy orders tried on small patterns
GREEDY_UP_TO = 300_000  # columns: beyond, the greedy sweep (a Python loop) runs only if no cyclic colouring fits
DSATUR_UP_TO = 20_000  # columns: DSATUR and incidence-degree too (Python heaps)
ORDERS_UP_TO = 100_000  # columns: the ordering heuristics and iterated greedy (Python loops, ~1 s per 1e5)
ITERATED = 12  # iterated-greedy passes over the best colouring found
TABU_UP_TO = 2_000  # columns: a tabu search then tries one colour fewer at a time (12x12 periodic stencil: 6, not 7)
TABU_MOVES = 2_000  # per attempt, fewer beyond 200 columns (the work is moves x conflicting columns)
STAR_BUDGET = 4_000_000  # sum of squared degrees: beyond, no star colouring (a Python loop, O(sum deg^2))


def colour_count(colours) -> int:
    return int(colours.max()) + 1 if len(colours) else 0


def _valid(pattern, colours, k) -> bool:
    """Whether no row of ``pattern`` has two columns of one colour."""
    rows = np.repeat(np.arange(pattern.shape[0], dtype=np.int64), np.diff(pattern.indptr))
    keys = np.sort(rows * k + colours[pattern.indices])
    return not (keys[1:] == keys[:-1]).any()


def _adjacency(pattern):
    """The column intersection graph ``P^T P`` as (indptr, indices) lists."""
    graph = (pattern.T.astype(np.int32) @ pattern.astype(np.int32)).tocsr()
    return graph.indptr.tolist(), graph.indices.tolist()


def _greedy_in(adjacency, order, n) -> list:
    indptr, indices = adjacency
    colour = [-1] * n
    for v in order:
        used = {colour[u] for u in indices[indptr[v] : indptr[v + 1]]}
        c = 0
        while c in used:
            c += 1
        colour[v] = c
    return colour


def _smallest_last(adjacency, n) -> list:
    """Matula-Beck: repeatedly remove a vertex of least remaining degree; colour in reverse removal order."""
    indptr, indices = adjacency
    degree = [indptr[v + 1] - indptr[v] for v in range(n)]
    buckets: dict = {}
    for v in range(n):
        buckets.setdefault(degree[v], set()).add(v)
    removed = [False] * n
    order = []
    low = 0
    for _ in range(n):
        while not buckets.get(low):
            low += 1
        v = buckets[low].pop()
        removed[v] = True
        order.append(v)
        for u in indices[indptr[v] : indptr[v + 1]]:
            if not removed[u] and u != v:
                buckets[degree[u]].discard(u)
                degree[u] -= 1
                buckets.setdefault(degree[u], set()).add(u)
                low = min(low, degree[u])
    return order[::-1]


def _incidence_degree(adjacency, n) -> list:
    """Next the vertex with most already-ordered neighbours (ties: lowest index)."""
    indptr, indices = adjacency
    incidence = [0] * n
    done = [False] * n
    heap = [(0, v) for v in range(n)]
    order = []
    while heap:
        key, v = heapq.heappop(heap)
        if done[v] or -key != incidence[v]:
            continue
        done[v] = True
        order.append(v)
        for u in indices[indptr[v] : indptr[v + 1]]:
            if not done[u]:
                incidence[u] += 1
                heapq.heappush(heap, (-incidence[u], u))
    return order


def _dsatur(adjacency, n) -> list:
    """DSATUR (Brelaz): next the column whose neighbours already use the most colours."""
    indptr, indices = adjacency
    colour = [-1] * n
    seen: list = [set() for _ in range(n)]
    degree = [indptr[v + 1] - indptr[v] for v in range(n)]
    heap = [(0, -degree[v], v) for v in range(n)]
    heapq.heapify(heap)
    while heap:
        saturation, _, v = heapq.heappop(heap)
        if colour[v] >= 0 or -saturation != len(seen[v]):
            continue  # coloured already, or a stale entry
        c = 0
        while c in seen[v]:
            c += 1
        colour[v] = c
        for u in indices[indptr[v] : indptr[v + 1]]:
            if colour[u] < 0 and c not in seen[u]:
                seen[u].add(c)
                heapq.heappush(heap, (-len(seen[u]), -degree[u], u))
    return colour


def _iterated(adjacency, colour, n, passes) -> list:
    """Culberson's iterated greedy: recolour with the classes in a new order (largest first, reversed,
    alternately); greedy keeps each class together, so the count never grows."""
    best = colour
    for k in range(passes):
        classes: dict = {}
        for v, c in enumerate(best):
            classes.setdefault(c, []).append(v)
        groups = sorted(classes.values(), key=len, reverse=True) if k % 2 == 0 else list(classes.values())[::-1]
        colour = _greedy_in(adjacency, [v for g in groups for v in g], n)
        if max(colour) <= max(best):
            best = colour
    return best


def _tabu(adjacency, colour, n, k, iterations, seed=0):
    """TabuCol (Hertz and de Werra): look for a proper colouring with ``k`` colours from ``colour``
    (its colours >= k moved to the least conflicting ones) by moving conflicting vertices, recent
    moves forbidden for a while; the colouring, or None when ``iterations`` moves did not reach it."""
    indptr, indices = adjacency
    rng = np.random.default_rng(seed)
    neighbours = [[u for u in indices[indptr[v] : indptr[v + 1]] if u != v] for v in range(n)]
    colour = [c if c < k else int(rng.integers(k)) for c in colour]
    gamma = [[0] * k for _ in range(n)]  # gamma[v][c]: neighbours of v coloured c
    for v in range(n):
        for u in neighbours[v]:
            gamma[v][colour[u]] += 1
    conflicts = sum(gamma[v][colour[v]] for v in range(n)) // 2
    clashing = {v for v in range(n) if gamma[v][colour[v]]}
    tabu: dict = {}
    for step in range(iterations):
        if conflicts == 0:
            return colour
        best, move = None, None
        for v in sorted(clashing):
            own = gamma[v][colour[v]]
            for c in range(k):
                if c == colour[v]:
                    continue
                delta = gamma[v][c] - own
                if tabu.get((v, c), -1) >= step and conflicts + delta > 0:
                    continue  # tabu, unless it solves everything
                if best is None or delta < best:
                    best, move = delta, (v, c)
        if move is None:
            return None
        v, c = move
        old = colour[v]
        tabu[(v, old)] = step + int(0.6 * conflicts) + int(rng.integers(10))
        colour[v] = c
        conflicts += best
        for u in neighbours[v]:
            gamma[u][old] -= 1
            gamma[u][c] += 1
        for u in neighbours[v] + [v]:
            if gamma[u][colour[u]]:
                clashing.add(u)
            else:
                clashing.discard(u)
    return colour if conflicts == 0 else None


def _greedy_colourings(pattern):
    """Distance-2 colourings of the columns from the greedy heuristics this size affords."""
    n = pattern.shape[1]
    adjacency = _adjacency(pattern)
    indptr = adjacency[0]
    found = [_greedy_in(adjacency, range(n), n)]
    if n <= ORDERS_UP_TO:
        degree = np.diff(np.asarray(indptr))
        found.append(_greedy_in(adjacency, np.argsort(-degree, kind="stable").tolist(), n))
        found.append(_greedy_in(adjacency, _smallest_last(adjacency, n), n))
    if n <= DSATUR_UP_TO:  # heap-based orders: ~2 s each at 32,768 columns
        found.append(_greedy_in(adjacency, _incidence_degree(adjacency, n), n))
        found.append(_dsatur(adjacency, n))
    if pattern.nnz <= 50_000:
        rng = np.random.default_rng(0)
        found += [_greedy_in(adjacency, rng.permutation(n).tolist(), n) for _ in range(RANDOM_ORDERS)]
    best = min(found, key=max)
    if n <= ORDERS_UP_TO:
        best = _iterated(adjacency, best, n, ITERATED)
    widest = int(np.diff(pattern.indptr).max())
    while n <= TABU_UP_TO and max(best) + 1 > widest:  # fewer colours than the greedy heuristics found
        fewer = _tabu(adjacency, best, n, max(best), min(TABU_MOVES, 400_000 // n))
        if fewer is None:
            break
        best = fewer
    return np.asarray(best, dtype=np.int64)


def column_colouring(pattern) -> np.ndarray:
    """Colours of the columns such that no row has two nonzero columns of one colour (CPR). The
    cyclic colourings ``j mod k`` are tried first, checked in O(nnz) each; the greedy heuristics
    when they may do better or nothing cyclic fits."""
    sp = pat.scipy_sparse()
    pattern = sp.csr_array(pattern)
    n = pattern.shape[1]
    if pattern.nnz == 0:
        return np.zeros(n, dtype=np.int64)
    widest = int(np.diff(pattern.indptr).max())
    best = None
    for k in range(widest, min(2 * widest, n) + 1):
        colours = np.arange(n, dtype=np.int64) % k
        if _valid(pattern, colours, k):
            best = colours
            break
    if best is None or (n <= GREEDY_UP_TO and best.max() + 1 > widest):
        colours = _greedy_colourings(pattern)
        if best is None or colours.max() < best.max():
            best = colours
    return best


def star_colouring(pattern, order=None) -> np.ndarray:
    """A greedy star colouring of the graph of a symmetric pattern (diagonal ignored): proper, and no
    path on four vertices with two colours. Colouring ``v`` forbids its neighbours' colours; for a
    coloured neighbour ``w`` and ``x`` next to ``w``, the colour of ``x`` when ``v``-``w``-``x``-``y``
    would alternate (``x`` has another neighbour coloured like ``w``) or ``u``-``v``-``w``-``x`` would
    (``v`` has another neighbour coloured like ``w``). O(sum of squared degrees)."""
    n = pattern.shape[0]
    indptr, indices = pattern.indptr.tolist(), pattern.indices.tolist()
    colour = [-1] * n
    counts: list = [{} for _ in range(n)]  # counts[x][c]: neighbours of x coloured c
    for v in range(n) if order is None else order:
        neighbours = [w for w in indices[indptr[v] : indptr[v + 1]] if w != v]
        forbidden = set()
        here: dict = {}
        for w in neighbours:
            if colour[w] >= 0:
                forbidden.add(colour[w])
                here[colour[w]] = here.get(colour[w], 0) + 1
        for w in neighbours:
            cw = colour[w]
            if cw < 0:
                continue
            twice = here[cw] > 1
            for x in indices[indptr[w] : indptr[w + 1]]:
                cx = colour[x]
                if x != v and x != w and cx >= 0 and (twice or counts[x].get(cw, 0) >= 2):
                    forbidden.add(cx)
        c = 0
        while c in forbidden:
            c += 1
        colour[v] = c
        for w in neighbours:
            counts[w][c] = counts[w].get(c, 0) + 1
    return np.asarray(colour, dtype=np.int64)


def symmetric_take(pattern, colours):
    """Where each nonzero of a symmetric pattern is read from the Hessian-vector products (flat index
    ``row * colours + colour`` into the n x colours products), or None when ``colours`` does not allow
    direct recovery. Both entries of a pair are read from one product, so the result is symmetric."""
    k = colour_count(colours)
    rows = np.repeat(np.arange(pattern.shape[0], dtype=np.int64), np.diff(pattern.indptr))
    cols = pattern.indices.astype(np.int64)
    keys, counts = np.unique(rows * k + colours[cols], return_counts=True)

    def alone(i, j):  # whether j is the only column of its colour in row i
        return counts[np.searchsorted(keys, i * k + colours[j])] == 1

    lo, hi = np.minimum(rows, cols), np.maximum(rows, cols)
    first = alone(lo, hi)
    if not (first | alone(hi, lo)).all():
        return None
    return np.where(first, lo * k + colours[hi], hi * k + colours[lo])


def symmetric_colouring(pattern, candidates: int = 8):
    """(colours, take) for a symmetric pattern: the fewest colours among the distance-2 colouring,
    that colouring with the densest columns given one colour each (arrowheads), and star colourings
    in natural and largest-first order; each checked for direct recovery."""
    n = pattern.shape[0]
    found = [column_colouring(pattern)]
    degree = np.diff(pattern.indptr)
    for threshold in np.unique(degree)[::-1][1 : candidates + 1]:
        heavy = degree > threshold
        if heavy.sum() >= colour_count(min(found, key=colour_count)):
            break
        keep = np.flatnonzero(~heavy)
        reduced = column_colouring(pattern[keep][:, keep])
        colours = np.empty(n, dtype=np.int64)
        colours[keep] = reduced
        colours[heavy] = colour_count(reduced) + np.arange(heavy.sum())
        found.append(colours)
    if colour_count(min(found, key=colour_count)) > 3 and int((degree.astype(np.int64) ** 2).sum()) <= STAR_BUDGET:
        found.append(star_colouring(pattern))
        found.append(star_colouring(pattern, np.argsort(-degree, kind="stable").tolist()))
    for colours in sorted(found, key=colour_count):
        take = symmetric_take(pattern, colours)
        if take is not None:
            return colours, take
    raise SymdiffError("internal error: no colouring of the Hessian pattern allows direct recovery; "
                       "please report it (use the dense hessian meanwhile)")  # pragma: no cover
