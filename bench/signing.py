"""The doctor's sheet signed and settled (after ``Claim/$submit``; ``--only-signing`` alone):
doctors signed in through the login page sign fresh sheets through the prescriber's pages,
over HTTP, as a browser does, on a served platform (PostgreSQL, Redis, audit and outbox on).

One operation is one sheet (a consultation C at 150-246 MAD, two medicines, one lab order) for one
insured, in the five requests a browser sends: the visit form (GET), "Relire" (POST, 303), the
review page (GET: the pre-settlement and the form's idempotency key), "Signer" (POST, 303: one
transaction writes the sheet, its signed Provenance and its settlement), the signed sheet
(GET). An operation counts only when that last page says the engine settled it: "signée et réglée",
or "retenue pour contrôle" when its anomaly rules hold it (the outcomes are printed).

Each operation is signed by the next of the registry's 40 GPs (an account each, signed in
once) for the next insured of a shuffled registry of 4,000 with open rights: two clients never
wait on the same doctor-and-insured lock, and no sheet repeats the lines of
another of the same day for the same insured (the duplicate check would ask to confirm). Only
when every insured has had a sheet does an operation tick "sign it anyway".
"""

from __future__ import annotations

import asyncio
import html
import random
import uuid
from itertools import count
from urllib.parse import urlencode

from bench.callers import authenticate, sign_in
from bench.harness import (
    Connection,
    Result,
    asyncpg_url,
    migrated_database,
    run_phase,
    served,
    settle,
)
from bench.pages import FORM, Pages, field, report
from bench.settlement import registry

INSURED = 4000
VISIT = {
    "acte-1-code": "C",
    "acte-1-honoraires": "150",
    "med-1-produit": "6118001141531",  # ZOVIRAX 200 mg
    "med-1-posologie": "1 comprimé 5 fois par jour",
    "med-1-duree": "5",
    "med-1-quantite": "1",
    "med-2-produit": "6118000070313",  # CICLOVIRAL 200 mg
    "med-2-posologie": "1 comprimé matin et soir",
    "med-2-duree": "10",
    "med-2-quantite": "2",
    "med-2-ns": "on",
    "bio-1-libelle": "Glycémie à jeun",
    "bio-1-coef": "30",
    "bio-1-note": "Contrôle annuel",
}
"""The visit as the doctor types it (the prescriber tests' full visit)."""
STEPS = ("form GET", "review POST", "review GET", "sign POST", "sheet GET")
DUPLICATE_FIELD = "doublon"
"""The review's "sign it anyway" box (``prescriber.duplicates.CONFIRM_FIELD``)."""


async def _doctors(database_url: str, practitioners: list[str], port: int) -> list[str]:
    """An account per GP (their key published on their Practitioner, as ``fse`` makes it),
    each signed in through the login page: their session cookies."""
    from fse.accounts import create_account
    from fse.config import Settings
    from fse.fhir_api.interactions import standalone_service
    from fse.security.users import Role

    settings = Settings(database_url=asyncpg_url(database_url), payment_schedule=False)
    accounts = []
    async with standalone_service(settings) as fhir:
        for n, practitioner in enumerate(practitioners):
            name, password = f"bench.dr{n}.{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
            await create_account(
                fhir,
                name,
                password,
                Role.PRESCRIBER,
                f"Dr Bench{n}",
                f"Practitioner/{practitioner}",
            )
            accounts.append((name, password))
    return [await sign_in(port, name, password) for name, password in accounts]


OUTCOMES = ("signée et réglée", "retenue pour contrôle", "rejetée", "annulée", "payée")
"""What the signed sheet's page may say of it (the labels of reimbursement/status.py)."""
SETTLED = OUTCOMES[:2]
"""Settled by the engine: to be paid at the next cutoff, or held for a controller by its
anomaly rules (a GP past 40 acts a day, which a fast run reaches: the work done is the same)."""


class Signing(Pages):
    """The operation, its per-request latencies and what went wrong."""

    def __init__(self, sessions: list[str], people: list[str]) -> None:
        super().__init__(STEPS)
        self.sessions = sessions
        self.people = random.sample(people, len(people))
        self.next = count()
        self.signed: list[str] = []

    async def _post(
        self, conn: Connection, step: str, fields: dict[str, str], cookie: str
    ) -> tuple[int, str]:
        """The visit form posted as ``step``: its status and where it redirects."""
        with self._timed(step):
            status, headers, _ = await conn.request(
                "POST", "/medecin/feuille", urlencode(fields).encode(), FORM, cookie=cookie
            )
        return status, headers.get("location", "")

    async def __call__(self, conn: Connection, index: int) -> bool:
        """One sheet signed and settled; False (counted by reason) otherwise."""
        turn = next(self.next)
        cookie = self.sessions[turn % len(self.sessions)]  # all 40 GPs in turn
        patient = self.people[turn % len(self.people)]
        with self._timed("form GET"):
            status, _, page = await conn.request(
                "GET", f"/medecin/feuille?patient={patient}", cookie=cookie
            )
        csrf = field(page, "csrf")
        if status != 200 or csrf is None:
            return self._failed(f"form {status}")
        # The fee moves from sheet to sheet as a GP's do: 15 sheets of one amount a day by one
        # doctor is an anomaly the engine holds for control (identical_amounts).
        fee = {"acte-1-honoraires": str(150 + turn % 97)}
        fields = {"csrf": csrf, "patient": patient, **VISIT, **fee}
        if turn >= len(self.people):  # every insured had a sheet today: the same lines again
            fields[DUPLICATE_FIELD] = "on"
        form = {**fields, "action": "relire"}
        status, review = await self._post(conn, "review POST", form, cookie)
        if status != 303 or not review.startswith("/medecin/relecture/"):
            return self._failed(f"review {status}")
        with self._timed("review GET"):
            status, _, page = await conn.request("GET", review, cookie=cookie)
        key = field(page, "cle")
        if status != 200 or key is None:
            return self._failed(f"review page {status}")
        form = {**fields, "cle": key, "action": "signer"}
        status, sheet = await self._post(conn, "sign POST", form, cookie)
        if status != 303 or not sheet.startswith("/medecin/feuille/FSE-"):
            return self._failed(f"sign {status}")
        with self._timed("sheet GET"):
            status, _, page = await conn.request("GET", sheet, cookie=cookie)
        if status != 200:
            return self._failed(f"sheet page {status}")
        text = html.unescape(page.decode())
        said = next((label for label in OUTCOMES if label in text), None)
        if said not in SETTLED:
            return self._failed(f"signed, not settled ({said or 'no status'})")
        self.outcomes[said] = self.outcomes.get(said, 0) + 1
        self.signed.append(sheet.rsplit("/", 1)[1])
        return True


NAME = "doctor signs a sheet (5 pages)"


async def _sign(
    port: int, clients: int, seconds: float, database_url: str
) -> tuple[Result, Signing]:
    await authenticate(port, asyncpg_url(database_url))
    print(f"  registering {INSURED:,} insured and 40 GPs ...", flush=True)
    practitioners, people, _ = await registry(port, INSURED)
    sessions = await _doctors(database_url, practitioners, port)
    await settle(database_url)
    signing = Signing(sessions, people)
    print(
        f"  {len(sessions)} doctors signing for {seconds:.0f} s with {clients} clients ...",
        flush=True,
    )
    result = await run_phase(NAME, signing, port, clients, seconds, database_url)
    return result, signing


def run(workers: int, clients: int, seconds: float) -> int:
    print("signing:", flush=True)
    database_url = migrated_database("fse_bench_signing")
    with served(database_url, workers, FSE_PAYMENT_SCHEDULE="false") as port:
        result, signing = asyncio.run(_sign(port, clients, seconds, database_url))
    return report(result, signing, "fse_bench_signing", database_url, Connection.client_id)
