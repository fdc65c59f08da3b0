"""Dispense numbers, which never look like care-sheet numbers.

A dispense is numbered ``DEL-AAAA-NNNNNNNNN-CC`` (its own ISO 7064 MOD 97-10 check characters);
the pharmacy's claim for it, a care sheet for CNSS, is numbered ``FSE-AAAA-NNNNNNNNN-CC`` with
the same year and sequence, so each number gives the other without a lookup. Dispenses written
before this rule carry their claim's ``FSE-`` number: it still opens them, and is its own claim
number.
"""

from __future__ import annotations

from fhir_profiles.identifiers import DISPENSE_NUMBER_RE, care_sheet_number, iso7064_mod97_10

PREFIX = "DEL"


def dispense_number(year: int, sequence: int) -> str:
    body = f"{PREFIX}{year:04d}{sequence:09d}"
    return f"{PREFIX}-{year:04d}-{sequence:09d}-{iso7064_mod97_10(body)}"


def claim_number(number: str) -> str:
    """The care-sheet number of the dispense's claim (an older ``FSE-`` number is its own)."""
    match = DISPENSE_NUMBER_RE.match(number)
    if match is None:
        return number
    return care_sheet_number(int(match["year"]), int(match["sequence"]))
