"""What a settled care sheet pays, line by line, read back from its Claim and ClaimResponse
(the doctor's and the pharmacist's screens show the same figures as the engine decided)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from fhir_profiles.systems import NGAP_ACTS_SYSTEM as NGAP_ACTS
from fse.fhir_json import decimal_of
from reimbursement.core.money import CENTIME


@dataclass(frozen=True)
class AmountLine:
    sequence: int
    code: str
    submitted: Decimal
    eligible: Decimal
    rate: Decimal
    benefit: Decimal
    copay: Decimal
    reason: str
    note: str = ""
    act: str = ""
    """The NGAP act the line names (its code), beside the key letter in ``code``."""
    act_label: str = ""


def _amount(entry: dict[str, Any]) -> Decimal:
    value = entry.get("amount", {}).get("value", entry.get("value", 0))
    return decimal_of(value).quantize(CENTIME)


def _act(item: dict[str, Any]) -> tuple[str, str]:
    """The NGAP act an item names (code, label), or empty ones."""
    for coding in item["productOrService"]["coding"]:
        if coding.get("system") == NGAP_ACTS:
            return str(coding.get("code", "")), str(coding.get("display", ""))
    return "", ""


def amount_lines(claim: dict[str, Any], response: dict[str, Any]) -> list[AmountLine]:
    codes = {i["sequence"]: i["productOrService"]["coding"][0]["code"] for i in claim["item"]}
    acts = {i["sequence"]: _act(i) for i in claim["item"]}
    notes = {n["number"]: n.get("text", "") for n in response.get("processNote", [])}
    lines = []
    for item in response.get("item", []):
        amounts = {a["category"]["coding"][0]["code"]: a for a in item["adjudication"]}
        reason = (amounts["benefit"].get("reason") or {}).get("coding", [{}])[0]
        lines.append(
            AmountLine(
                sequence=int(item["itemSequence"]),
                code=codes.get(item["itemSequence"], "?"),
                submitted=_amount(amounts["submitted"]),
                eligible=_amount(amounts["eligible"]),
                rate=decimal_of(amounts["eligpercent"]["value"]).quantize(Decimal("1")),
                benefit=_amount(amounts["benefit"]),
                copay=_amount(amounts["copay"]),
                reason=str(reason.get("display", "")),
                note=" ; ".join(notes.get(n, "") for n in item.get("noteNumber", [])),
                act=acts.get(item["itemSequence"], ("", ""))[0],
                act_label=acts.get(item["itemSequence"], ("", ""))[1],
            )
        )
    return lines


@dataclass(frozen=True)
class Totals:
    submitted: Decimal
    benefit: Decimal
    copay: Decimal


def totals(lines: Iterable[AmountLine]) -> Totals:
    """A sheet's or a dispense's totals, summed once from its lines (every screen's totals)."""
    submitted = benefit = copay = Decimal("0.00")
    for line in lines:
        submitted += line.submitted
        benefit += line.benefit
        copay += line.copay
    return Totals(submitted, benefit, copay)
