"""Refuse a claim whose fee is above its key letter's ceiling, before anything is written.

The ceiling (``core/ceilings.py``, data in ``data/fee-ceilings.json``) catches typing slips that
would otherwise be settled: ``99999999`` for a consultation is not a fee above the tariff that the
insured keeps, it is a mistake. The doctor's review applies the same ceiling to the form.
"""

from __future__ import annotations

from fse.errors import ErrorCode, Issue, Unprocessable
from reimbursement.claims import ParsedClaim
from reimbursement.core.ceilings import FeeCeilings
from reimbursement.core.model import CodeKind


def check_fees(parsed: ParsedClaim, ceilings: FeeCeilings) -> None:
    """422 FSE-0048, one issue per line above its ceiling (``Claim.item[i].net``)."""
    problems = []
    for index, line in enumerate(parsed.lines):  # parse_claim refused any unreadable line
        if line.kind != CodeKind.NGAP:
            continue
        found = ceilings.exceeded(
            line.code, line.care_date, line.billed, line.coefficient, line.quantity
        )
        if found is None:
            continue
        path = f"Claim.item[{index}].net"
        message = (
            f"{path}: honoraires {line.billed} MAD au-delà du plafond de {found.limit} MAD "
            f"pour {line.code} ({found.per_unit} MAD par unité de coefficient, coefficient "
            f"{line.coefficient}, quantité {line.quantity}, {found.version})"
        )
        problems.append(Issue(ErrorCode.FEE_ABOVE_CEILING, message, (path,), issue_type="value"))
    if problems:
        raise Unprocessable.of(problems, ErrorCode.FEE_ABOVE_CEILING)
