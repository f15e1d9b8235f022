"""numpy's einsum grammar (implicit output, ``...``, sublists, spaces) normalized to the form the
einsum node takes: one distinct letter per axis of each operand and an explicit output.

An ellipsis becomes fresh letters, a repeated letter a diagonal, and size-1 axes that numpy
broadcasts an explicit broadcast, so the einsum op's derivatives and code see equal sizes only.
"""

from __future__ import annotations

import numbers
import string
from collections import Counter

from ..errors import ShapeError
from ..graph import Node
from . import shape
from .indexing import take_diagonal
from .surface import as_node, refuse

LABELS = string.ascii_uppercase + string.ascii_lowercase  # numpy's sublist labels 0..51, in order
ELLIPSIS = "..."


def explicit(args) -> tuple[str, list[Node]]:
    """``np.einsum``'s positional arguments as an explicit spec and the operand nodes it applies to."""
    subscripts, operands = _subscripts(args)
    text = subscripts.replace(" ", "")
    bad = next((c for c in text.replace("->", "") if c not in LABELS and c not in ",."), None)
    if bad is not None or text.count("->") > 1:
        bad = bad or "->"
        raise refuse(f"einsum subscripts {subscripts!r}: invalid subscript {bad!r}",
                     "subscripts are letters, commas, '...' and at most one '->', as numpy requires")
    ins, arrow, out = text.partition("->")
    terms = ins.split(",")
    if len(terms) != len(operands):
        more = "more" if len(operands) > len(terms) else "fewer"
        raise ShapeError(f"einsum {subscripts!r}: {more} operands ({len(operands)}) than the subscripts "
                         f"specify ({len(terms)})")
    for k, term in enumerate(terms + ([out] if arrow else [])):
        if "." in term and (term.count(".") != 3 or ELLIPSIS not in term):
            where = f"operand {k}" if k < len(terms) else "the output"
            raise refuse(f"einsum subscripts {subscripts!r}: a '.' that is not part of an ellipsis ('...') in {where}",
                         "write '...' once per operand for the axes it broadcasts")
    nodes = [as_node(o) for o in operands]
    named = "".join(terms).replace(".", "") + out.replace(".", "")
    rank = _ellipsis_rank(subscripts, terms, nodes)
    fresh = "".join(c for c in LABELS if c not in named)
    if len(fresh) < rank:
        raise ShapeError(f"einsum {subscripts!r}: more than {len(LABELS)} distinct axes")
    fresh = fresh[:rank]
    expanded = [t.replace(ELLIPSIS, fresh[rank - (n.ndim - len(t) + 3) :]) for t, n in zip(terms, nodes)]
    if not arrow:  # numpy's implicit output: '...' first, then the letters used once, in sorted order
        counts = Counter(ins.replace(".", "").replace(",", ""))
        out = (ELLIPSIS if ELLIPSIS in ins else "") + "".join(sorted(c for c, n in counts.items() if n == 1))
    elif ELLIPSIS not in out and rank:
        raise ShapeError(f"einsum {subscripts!r}: the output has no '...' for the {rank} axes the inputs' '...' "
                         f"stand for; write '...' in the output, or sum those axes with np.sum afterwards")
    out = out.replace(ELLIPSIS, fresh)
    repeated = next((c for c in out if out.count(c) > 1), None)
    if repeated is not None:
        raise ShapeError(f"einsum {subscripts!r}: output subscript {repeated!r} appears more than once")
    missing = next((c for c in out if c not in "".join(expanded)), None)
    if missing is not None:
        raise ShapeError(f"einsum {subscripts!r}: output subscript {missing!r} is in no input")
    nodes = _broadcast(subscripts, expanded, nodes)
    terms, nodes = zip(*(_distinct(t, n) for t, n in zip(expanded, nodes)))
    return f"{','.join(terms)}->{out}", list(nodes)


def _subscripts(args) -> tuple[str, tuple]:
    """The subscripts string and the operands, from either of numpy's call forms."""
    if not args:
        raise ShapeError("einsum needs subscripts and operands")
    if isinstance(args[0], str):
        return args[0], tuple(args[1:])
    # sublist form: op0, sublist0, op1, sublist1, ..., [output sublist]
    pairs = args[: len(args) - len(args) % 2]
    terms = [_sublist(s) for s in pairs[1::2]]
    text = ",".join(terms) + ("->" + _sublist(args[-1]) if len(args) % 2 else "")
    return text, tuple(pairs[0::2])


def _sublist(sub) -> str:
    try:
        items = list(sub)
    except TypeError:
        raise refuse(f"einsum sublist {sub!r}", "each operand is followed by a list of axis numbers") from None
    text = ""
    for s in items:
        if s is Ellipsis:
            text += ELLIPSIS
        elif isinstance(s, numbers.Integral) and not isinstance(s, bool) and 0 <= s < len(LABELS):
            text += LABELS[s]
        else:
            raise refuse(f"einsum sublist {sub!r}: subscript {s!r}", f"use integers in [0, {len(LABELS)}) and Ellipsis")
    return text


def _ellipsis_rank(subscripts, terms, nodes) -> int:
    """How many axes the broadcast ``...`` has (0 without one), checking each operand's axis count."""
    rank = 0
    for k, (t, n) in enumerate(zip(terms, nodes)):
        named = len(t.replace(ELLIPSIS, ""))
        if ELLIPSIS in t and n.ndim >= named:
            rank = max(rank, n.ndim - named)
        elif n.ndim != named:
            raise ShapeError(f"einsum {subscripts!r}: operand {k} has {n.ndim} axes, its subscripts {t!r} name {named}"
                             + ("" if ELLIPSIS in t else "; write '...' for the axes to broadcast"))
    return rank


def _broadcast(subscripts, terms, nodes) -> list[Node]:
    """Each operand with its size-1 axes stretched to the size other operands give that letter."""
    sizes: dict = {}
    for k, (t, n) in enumerate(zip(terms, nodes)):
        own = {}
        for c, d in zip(t, n.shape):
            if own.setdefault(c, d) != d:
                raise ShapeError(f"einsum {subscripts!r}: operand {k} repeats subscript {c!r} on axes of "
                                 f"sizes {own[c]} and {d}; a repeated subscript takes a diagonal of equal sizes")
        for c, d in own.items():
            if sizes.setdefault(c, d) != d and 1 not in (sizes[c], d):
                raise ShapeError(f"einsum {subscripts!r}: operands of shapes {tuple(x.shape for x in nodes)} "
                                 f"do not broadcast (subscript {c!r} has sizes {sizes[c]} and {d})")
            sizes[c] = max(sizes[c], d)
    return [shape.broadcast(n, n.ndim, tuple(sizes[c] for c in t)) for t, n in zip(terms, nodes)]


def _distinct(term: str, node: Node) -> tuple[str, Node]:
    """A term with a repeated letter as the diagonal it means (numpy's ``ii``), letters then distinct."""
    while len(set(term)) != len(term):
        c = next(ch for ch in term if term.count(ch) > 1)
        i = term.index(c)
        j = term.index(c, i + 1)
        node = take_diagonal(node, i, j)
        term = term[:i] + term[i + 1 : j] + term[j + 1 :] + c
    return term, node
