"""Rejection and hold reasons: the codes of the guide's CodeSystem ``rejection-reason``.

A test keeps this list equal to ``fhir_profiles/definitions/CodeSystem-rejection-reason.json``.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    RIGHTS_CLOSED = "R01"
    WAITING_PERIOD = "R02"
    DEPENDANT_AGE = "R03"
    NOT_IN_NOMENCLATURE = "R04"
    NOT_IN_BASKET = "R05"
    DUPLICATE = "R06"
    FILING_DEADLINE = "R07"
    PRACTITIONER_NOT_ALLOWED = "R08"
    PRESCRIPTION_EXPIRED = "R09"
    ABOVE_LIMIT = "R10"
    PRIOR_APPROVAL = "R11"
    CEILING_REACHED = "R12"
    HELD_FOR_REVIEW = "R13"
    SUBSTITUTION_REFUSED = "R14"


RIGHTS_REASONS = frozenset({Reason.RIGHTS_CLOSED, Reason.WAITING_PERIOD, Reason.DEPENDANT_AGE})
