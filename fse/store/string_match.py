"""String search past the indexed prefix.

The string index keeps the first ``STRING_MAX`` characters of each value (folded for the default
and ``:contains`` searches, as sent for ``:exact``), so SQL alone would find ``'a'*255+'xyz'``
when asked for ``'a'*255+'zzz'``. A criterion with a value that long is narrowed in SQL by its
indexed prefix, then each candidate is compared on its whole values here. A ``:contains``
needle may lie past the prefix of any long value: those searches also take every value the index
cut as a candidate, and always compare here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fse.store.indexing import STRING_MAX, fold, strings_of, values_at
from fse.store.search_params import search_param

if TYPE_CHECKING:  # query.py refuses long chained values with beyond_index
    from fse.store.query import Criterion


def longer_than_index(criterion: Criterion) -> bool:
    """Whether a value of the criterion is longer than the index keeps."""
    if criterion.kind != "string" or criterion.modifier == "missing":
        return False
    if criterion.modifier == "exact":  # a stored value cut to STRING_MAX would equal it
        return any(len(v) >= STRING_MAX for v in criterion.values)
    return any(len(fold(v)) > STRING_MAX for v in criterion.values)


def beyond_index(criterion: Criterion) -> bool:
    """Whether the index's prefix cannot decide the criterion alone."""
    return criterion.kind == "string" and (
        criterion.modifier == "contains" or longer_than_index(criterion)
    )


def matches(rtype: str, resource: dict[str, Any], criterion: Criterion) -> bool:
    """The criterion on the resource's whole values, as the index compares their prefixes."""
    param = search_param(rtype, criterion.param)
    if param is None:
        return False
    texts = [t for path in param.paths for v in values_at(resource, path) for t in strings_of(v)]
    if criterion.modifier == "exact":
        return any(t == v for t in texts for v in criterion.values)
    folded = [fold(t) for t in texts]
    wanted = [fold(v) for v in criterion.values]
    if criterion.modifier == "contains":
        return any(w in t for t in folded for w in wanted)
    return any(t.startswith(w) for t in folded for w in wanted)
