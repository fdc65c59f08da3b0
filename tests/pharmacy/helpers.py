"""A pharmacist at the counter: an account with its key, a pharmacy, a settlement clock."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import httpx

from fse.accounts import create_account
from fse.crypto.tokens import SigningKey
from fse.security.users import Role, unlock_signing_key
from pharmacy.dispense import Dispensed, DispenseOrder, LineOrder, dispense
from pharmacy.lookup import OpenLine, open_lines
from pharmacy.pharmacist import Pharmacist, pharmacist_of
from prescriber.sheets import SignedSheet
from reimbursement.settle import Settlement
from tests.conftest import Platform
from tests.fse.web.test_login import PASSWORD
from tests.prescriber.test_sheets import FULL_VISIT, sign_as_benali, visit_of
from tests.reimbursement.demo import FATIMA, PHARMACIST, load_demo

AT = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
"""The day after the doctor signed (tests/prescriber NOW): the prescriptions are valid."""
ZOVIRAX, CICLOVIRAL = "6118001141531", "6118000070313"
AMOXI_GEN = "6118000090854"


@dataclass(frozen=True)
class Counter:
    platform: Platform
    pharmacist: Pharmacist
    key: SigningKey
    jwk: dict[str, str]

    def settlement(self, when: datetime = AT) -> Settlement:
        state = self.platform.app.state.settlement
        return Settlement(state.fhir, state.books, state.schedule, clock=lambda: when)

    async def lines(self, text: str, when: datetime = AT) -> list[OpenLine]:
        return await open_lines(
            self.platform.app.state.fhir,
            text,
            when.date(),
            self.pharmacist.practitioner,
            self.pharmacist.pharmacy,
        )

    async def dispense(
        self,
        patient: str,
        *lines: LineOrder,
        tiers_payant: bool = False,
        idempotency_key: str | None = None,
        when: datetime = AT,
    ) -> Dispensed:
        order = DispenseOrder(patient, lines, tiers_payant)
        return await dispense(
            self.platform.app.state.fhir,
            self.settlement(when),
            self.pharmacist,
            self.key,
            order,
            idempotency_key or uuid.uuid4().hex,
            when,
            self.platform.app.state.signing_key,
        )


async def counter(platform: Platform, refs: dict[str, str], who: str = PHARMACIST) -> Counter:
    """A new pharmacist account linked to the demo pharmacist ``who`` (with a published key)."""
    name = f"ph.{uuid.uuid4().hex[:8]}"
    user = await create_account(
        platform.app.state.fhir, name, PASSWORD, Role.PHARMACIST, "Pharmacien", refs[who]
    )
    key = await unlock_signing_key(platform.engine, name, PASSWORD)
    pharmacist = await pharmacist_of(platform.app.state.fhir, refs[who])
    assert key is not None and pharmacist is not None and user.signing_jwk is not None
    return Counter(platform, pharmacist, key, user.signing_jwk)


async def fatima_sheet(
    platform: Platform, client: httpx.AsyncClient
) -> tuple[dict[str, str], SignedSheet]:
    """Dr Benali's sheet for Fatima: ZOVIRAX x1 (substitutable), CICLOVIRAL x2 (not)."""
    refs = await load_demo(client)
    sheet = await sign_as_benali(platform, refs, FATIMA, visit_of(FULL_VISIT))
    return refs, sheet


def line(found: list[OpenLine], name: str) -> OpenLine:
    return next(candidate for candidate in found if candidate.medicine.startswith(name))


def order(
    open_line: OpenLine, boxes: int, ean: str | None = None, price: str | None = None
) -> LineOrder:
    return LineOrder(
        open_line.request_id,
        Decimal(boxes),
        ean or open_line.ean,
        Decimal(price) if price is not None else Decimal("0.00"),
        open_line.remaining,
    )
