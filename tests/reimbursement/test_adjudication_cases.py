"""Hand-computed adjudication cases on the real reference data (reimbursement/data/).

Every expectation is worked out by hand from the data files and amo-rules.md (§1, §2, §5); the
arithmetic sits in a comment next to each case. Nothing here calls the engine's pricing or rate
helpers: the only lookup is an EAN by medicine name in the medicines JSON file.

Line formula (amo-rules.md §2.1): eligible = min(billed, tariff); benefit = rate x eligible,
rounded to the centime half up; patient share = billed - benefit.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal

import pytest

from reimbursement.core.adjudication import adjudicate
from reimbursement.core.model import (
    Beneficiary,
    CareSheet,
    CodeKind,
    CoveragePeriod,
    Exoneration,
    History,
    Line,
    Payee,
    PrescriptionLine,
    Provider,
    Rights,
)
from reimbursement.core.reasons import Reason
from reimbursement.medicine_search import index_of
from reimbursement.reference_data import DATA, default_books, load_books

# SNOMED CT specialties (PractitionerRole.specialty).
GP = "394814009"
CARDIOLOGY = "394579002"
PSYCHIATRY = "394587001"
SURGERY = "394609007"
RADIOLOGY = "394914008"
DERMATOLOGY = "394582007"
ONCOLOGY = "394593009"
BIOLOGY = "394595002"

PROVIDER = "INPE-100000019"
DAY = date(2026, 3, 10)
RECEIVED = date(2026, 3, 20)
BIRTH = date(1980, 5, 5)
OPEN = "ouverts"
CLOSED = "fermes-cotisations"
STAGE = "stage"
MAINTAINED = "maintien"

MEDICINES_FILE = DATA / "medicines" / "2014-06-23-cnops-2014.json"
"""The CNOPS list the platform ships (5,917 presentations, 2014 prices)."""


def ean(label: str) -> str:
    """The EAN-13 of the one reimbursable product the screens name ``label`` (a data lookup)."""
    books = load_books()
    found = index_of(books.medicines.in_force(DAY)).search(label)
    assert found.choice is not None, (label, found.why)
    return found.choice.medicine.ean


ZOVIRAX = ean("ZOVIRAX 200 MG, 1 BOITE 25 COMPRIME")  # P, PPV 232.00, PBR 209.00
CICLOVIRAL = ean("CICLOVIRAL 200 MG, 1 BOITE 25 COMPRIME")  # G, same group, PPV = PBR = 209.00
DOLIPRANE = ean(
    "DOLIPRANE 500 MG COMPRIME SECABLE, 1 BOITE 20 COMPRIME"
)  # P, PARACETAMOL, PPV 10.30, PBR 10.20
CLAMOXYL_500 = ean("CLAMOXYL 500 MG, 1 BOITE 12 GELULE")  # P, PPV 52.00, PBR 46.60
BIOMOX_500 = ean("BIOMOX 500 MG, 1 BOITE 12 GELULE")  # G, PPV = PBR = 39.80
CLAMOXYL_1G = ean(
    "CLAMOXYL 1 G COMPRIME DISPERSIBLE, 1 BOITE 12 COMPRIME"
)  # P, 1 g dispersible, PPV = PBR = 58.80
STREPTOCID_500 = ean("STREPTOCID 500 MG, 1 BOITE 12 GELULE")  # G, PPV = PBR = 40.30
DOLIPRANE_VITAMINE_C = "6118000041252"  # rate 0 in the list: not reimbursable
HERCEPTIN = ean(
    "HERCEPTIN 150 MG POUDRE POUR PERFUSION, 1 BOITE 1 FLACON"
)  # PPV = PBR = 6890.00 (>= 2000: costly)
PANADOL_500 = ean("PANADOL 500 MG, 1 BOITE 20 COMPRIME PELLICULE")  # P, PPV 14.50, PBR 11.70
TAHOR_20 = ean("TAHOR 20 MG COMPRIME PELLICULE, 1 BOITE 28 COMPRIME")  # P, PPV = PBR = 224.00
TAHOR_20_OTHER_CODE = "6118000250807"  # the same pack under its other code
TORVA_20_30 = ean(
    "TORVA 20 MG COMPRIME ENROBE, 1 BOITE 30 COMPRIME"
)  # G, PPV = PBR = 224.00, 30 tablets
ANDOL_C = ean("ANDOL C 500 MG/300 MG, 1 BOITE 10 COMPRIME EFFERVESCENT")  # PPV 16.00, no PBR


# --- builders -----------------------------------------------------------------------------


def period(
    regime: str = "salaries",
    status: str = OPEN,
    start: date = date(2020, 1, 1),
    end: date | None = None,
    *,
    cid: str = "cov-1",
    relationship: str = "self",
    condition: str | None = None,
    maintained: str | None = None,
) -> CoveragePeriod:
    return CoveragePeriod(
        coverage_id=cid,
        regime=regime,
        status=status,
        start=start,
        end=end,
        relationship=relationship,
        dependant_condition=condition,
        maintained_reason=maintained,
    )


def act(
    code: str,
    billed: str,
    coefficient: str = "1",
    *,
    day: date = DAY,
    exo: str | None = None,
    named: str | None = None,
) -> Line:
    """``named``: the NGAP act the line names beside its key letter (reimbursement/data/ngap)."""
    return Line(
        sequence=0,
        kind=CodeKind.NGAP,
        code=code,
        billed=Decimal(billed),
        care_date=day,
        coefficient=Decimal(coefficient),
        exoneration_id=exo,
        act=named,
    )


def flat(code: str, billed: str, days: str = "1", *, day: date = DAY) -> Line:
    return Line(
        sequence=0,
        kind=CodeKind.FLAT_RATE,
        code=code,
        billed=Decimal(billed),
        care_date=day,
        quantity=Decimal(days),
    )


def med(
    dispensed: str,
    billed: str,
    boxes: str = "1",
    *,
    prescribed: str | None = None,
    day: date = DAY,
    valid_until: date = date(2026, 6, 8),
    status: str = "active",
    remaining: str = "2",
    substitutable: bool = True,
    exo: str | None = None,
) -> Line:
    prescription = PrescriptionLine(
        request_id="MedicationRequest/mr-1",
        code=prescribed or dispensed,
        valid_until=valid_until,
        status=status,
        remaining=Decimal(remaining),
        substitutable=substitutable,
    )
    return Line(
        sequence=0,
        kind=CodeKind.MEDICINE,
        code=dispensed,
        billed=Decimal(billed),
        care_date=day,
        quantity=Decimal(boxes),
        exoneration_id=exo,
        prescription=prescription,
    )


def exoneration(
    kind: str,
    code: str,
    start: date = date(2025, 1, 1),
    end: date | None = None,
    cid: str = "exo-1",
) -> Exoneration:
    return Exoneration(condition_id=cid, kind=kind, code=code, start=start, end=end)


def sheet(
    *lines: Line,
    regime: str = "salaries",
    coverages: tuple[CoveragePeriod, ...] | None = None,
    specialties: tuple[str, ...] = (GP,),
    public: bool = False,
    provider_start: date | None = None,
    birth: date | None = BIRTH,
    deceased: date | None = None,
    received: date = RECEIVED,
    exonerations: tuple[Exoneration, ...] = (),
    guaranteed: Rights | None = None,
    history: History | None = None,
) -> CareSheet:
    return CareSheet(
        key="FSE-2026-TEST",
        provider=Provider(PROVIDER, specialties, provider_start, public),
        beneficiary=Beneficiary("Patient/p-1", birth, deceased),
        coverages=coverages if coverages is not None else (period(regime),),
        lines=tuple(replace(line, sequence=i) for i, line in enumerate(lines, start=1)),
        received_on=received,
        exonerations=exonerations,
        guaranteed=guaranteed,
        history=history or History(),
    )


# --- expectations -------------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    eligible: str
    benefit: str
    patient_share: str
    reasons: tuple[Reason, ...] = ()


def paid(eligible: str, benefit: str, patient_share: str) -> Expected:
    return Expected(eligible, benefit, patient_share)


def rejected(reason: Reason, billed: str) -> Expected:
    """A rejected line pays nothing: the patient keeps the whole amount."""
    return Expected("0.00", "0.00", billed, (reason,))


@dataclass(frozen=True)
class Outcome:
    outcome: str
    status: str
    lines: tuple[Expected, ...]
    payee: Payee = Payee.INSURED
    errors: tuple[Reason, ...] = ()
    holds: frozenset[str] = frozenset()
    opens_on: date | None = None
    versions: tuple[str | None, ...] | None = None


def approved(
    *lines: Expected,
    payee: Payee = Payee.INSURED,
    versions: tuple[str | None, ...] | None = None,
) -> Outcome:
    return Outcome("complete", "approved", lines, payee, versions=versions)


def nothing_paid(*lines: Expected) -> Outcome:
    """Complete (decided) but every line rejected for a reason other than rights."""
    return Outcome("complete", "rejected", lines)


def error(reason: Reason, billed: str, opens_on: date | None = None) -> Outcome:
    """The whole sheet fails on rights or on the filing deadline."""
    return Outcome(
        "error", "rejected", (rejected(reason, billed),), errors=(reason,), opens_on=opens_on
    )


def held(*lines: Expected, rules: set[str]) -> Outcome:
    return Outcome("queued", "held", lines, holds=frozenset(rules))


def d(text: str) -> date:
    return date.fromisoformat(text)


CASES = [
    # ---- regimes, key letters, specialties -----------------------------------------------
    pytest.param(
        sheet(act("C", "150.00")),
        approved(paid("80.00", "56.00", "94.00")),  # 70% x min(150, 80) = 56.00; 150 - 56 = 94
        id="salaries-gp-C-fee-above-tariff",
    ),
    pytest.param(
        sheet(act("Cs", "250.00"), regime="tns", specialties=(DERMATOLOGY,)),
        approved(paid("150.00", "105.00", "145.00")),  # 70% x min(250, 150) = 105.00
        id="tns-specialist-Cs",
    ),
    pytest.param(
        sheet(
            act("CsC", "190.00"),
            coverages=(period("achamil", start=d("2024-01-01")),),
            specialties=(CARDIOLOGY,),
        ),
        approved(paid("190.00", "133.00", "57.00")),  # 70% x min(190, 190) = 133.00
        id="achamil-cardiologist-CsC",
    ),
    pytest.param(
        sheet(act("CsC", "190.00"), specialties=(GP,)),
        nothing_paid(rejected(Reason.PRACTITIONER_NOT_ALLOWED, "190.00")),  # CsC: cardiology only
        id="gp-CsC-rejected-R08",
    ),
    pytest.param(
        sheet(act("CNPSY", "250.00"), specialties=(PSYCHIATRY,)),
        approved(paid("190.00", "133.00", "117.00")),  # 70% x min(250, 190) = 133.00
        id="psychiatrist-CNPSY",
    ),
    pytest.param(
        sheet(act("K", "2000.00", "70"), specialties=(SURGERY,)),
        # K70 = 70 x 22.50 = 1575.00; 70% x min(2000, 1575) = 1102.50; 2000 - 1102.50 = 897.50
        approved(paid("1575.00", "1102.50", "897.50")),
        id="surgeon-K70",
    ),
    pytest.param(
        sheet(act("K", "112.50", "5"), specialties=(GP,)),
        nothing_paid(rejected(Reason.PRACTITIONER_NOT_ALLOWED, "112.50")),  # K: not for a GP
        id="gp-K5-rejected-R08",
    ),
    pytest.param(
        sheet(act("Z", "150.00", "15"), regime="public", specialties=(RADIOLOGY,)),
        # Z15 = 15 x 10.00 = 150.00; public ambulatory 80% x 150 = 120.00
        approved(paid("150.00", "120.00", "30.00")),
        id="public-radiology-Z15",
    ),
    pytest.param(
        sheet(act("B", "300.00", "250"), specialties=(BIOLOGY,)),
        # B250 = 250 x 1.10 = 275.00; biology 70% x min(300, 275) = 192.50; 300 - 192.50
        approved(paid("275.00", "192.50", "107.50")),
        id="salaries-biology-B250",
    ),
    pytest.param(
        sheet(act("Z", "4010.00", "401"), specialties=(RADIOLOGY,)),
        nothing_paid(rejected(Reason.ABOVE_LIMIT, "4010.00")),  # Z coefficient max 400
        id="Z401-coefficient-out-of-range-R10",
    ),
    pytest.param(
        sheet(act("AMM", "100.00", "2"), specialties=()),
        nothing_paid(rejected(Reason.ABOVE_LIMIT, "100.00")),  # AMM coefficient in [1, 1]
        id="AMM2-coefficient-out-of-range-R10",
    ),
    # ---- NGAP acts: the list's coefficient limits the line where it is sound -----------
    pytest.param(
        sheet(act("K", "2025.00", "90", named="J203"), specialties=(SURGERY,)),
        nothing_paid(rejected(Reason.ABOVE_LIMIT, "2025.00")),  # J203 (hernie) is K82 at most
        id="K90-for-J203-above-the-act-R10",
    ),
    pytest.param(
        sheet(act("K", "2000.00", "82", named="J203"), specialties=(SURGERY,)),
        # K82 = 82 x 22.50 = 1845.00; 70% x min(2000, 1845) = 1291.50; 2000 - 1291.50 = 708.50
        approved(paid("1845.00", "1291.50", "708.50")),
        id="K82-for-J203-at-the-act",
    ),
    pytest.param(
        sheet(act("Z", "300.00", "30", named="T100"), specialties=(RADIOLOGY,)),
        # T100 is printed twice (coefficients 4 and 22): no limit. Z30 = 300.00; 70% = 210.00
        approved(paid("300.00", "210.00", "90.00")),
        id="Z30-for-ambiguous-T100-no-limit",
    ),
    pytest.param(
        sheet(act("K", "3375.00", "150", named="D542"), specialties=(SURGERY,)),
        # D542's cell "00 30" is flagged: no limit. K150 = 3375.00; 70% = 2362.50
        approved(paid("3375.00", "2362.50", "1012.50")),
        id="K150-for-flagged-D542-no-limit",
    ),
    pytest.param(
        sheet(act("XYZ", "100.00")),
        nothing_paid(rejected(Reason.NOT_IN_NOMENCLATURE, "100.00")),  # no key letter XYZ
        id="unknown-code-R04",
    ),
    pytest.param(
        sheet(flat("acupuncture", "300.00")),
        nothing_paid(rejected(Reason.NOT_IN_BASKET, "300.00")),  # excluded from the basket
        id="acupuncture-excluded-R05",
    ),
    pytest.param(
        sheet(act("C", "150.00"), flat("acupuncture", "300.00")),
        # line 1: 70% x min(150, 80) = 56.00; line 2 R05; totals 56.00 / 94 + 300 = 394.00
        approved(paid("80.00", "56.00", "94.00"), rejected(Reason.NOT_IN_BASKET, "300.00")),
        id="mixed-sheet-one-line-excluded",
    ),
    # ---- hospitalisation, facility, Tadamon -----------------------------------------------
    pytest.param(
        sheet(flat("hospitalisation-medicale", "2400.00", "3")),
        # 3 x 550 = 1650.00; 70% x min(2400, 1650) = 1155.00; 2400 - 1155 = 1245.00
        approved(paid("1650.00", "1155.00", "1245.00")),
        id="salaries-hospital-day-x3",
    ),
    pytest.param(
        sheet(flat("hospitalisation-medicale", "1650.00", "3"), regime="public", public=True),
        # 3 x 550 = 1650.00; public regime, public hospital 100% x 1650 = 1650.00
        approved(paid("1650.00", "1650.00", "0.00")),
        id="public-hospital-public-facility-100",
    ),
    pytest.param(
        sheet(flat("hospitalisation-medicale", "2000.00", "3"), regime="public"),
        # 3 x 550 = 1650.00; public regime, private clinic 90% x min(2000, 1650) = 1485.00
        approved(paid("1650.00", "1485.00", "515.00")),
        id="public-hospital-private-facility-90",
    ),
    pytest.param(
        sheet(
            act("C", "80.00"),
            coverages=(period("tadamon", start=d("2022-12-01")),),
            public=True,
        ),
        # Tadamon is free in public facilities: 100% x 80 = 80.00, the facility is paid
        approved(paid("80.00", "80.00", "0.00"), payee=Payee.PROVIDER),
        id="tadamon-public-facility-100-provider-paid",
    ),
    pytest.param(
        sheet(act("C", "120.00"), coverages=(period("tadamon", start=d("2022-12-01")),)),
        # Tadamon in the private sector is reimbursed: 70% x min(120, 80) = 56.00 to the insured
        approved(paid("80.00", "56.00", "64.00"), payee=Payee.INSURED),
        id="tadamon-private-70-insured-paid",
    ),
    # ---- ALD / ALC -------------------------------------------------------------------------
    pytest.param(
        sheet(
            act("Cs", "200.00", exo="exo-1"),
            specialties=(ONCOLOGY,),
            exonerations=(exoneration("ALC", "C50"),),
        ),
        approved(paid("150.00", "150.00", "50.00")),  # ALC 100% x min(200, 150) = 150.00
        id="ALC-line-100",
    ),
    pytest.param(
        sheet(act("C", "100.00", exo="exo-1"), exonerations=(exoneration("ALD", "E11"),)),
        approved(paid("80.00", "76.00", "24.00")),  # ALD E11 95% x min(100, 80) = 76.00
        id="ALD-E11-95",
    ),
    pytest.param(
        sheet(act("C", "100.00", exo="exo-1"), exonerations=(exoneration("ALD", "E10.9"),)),
        approved(paid("80.00", "79.20", "20.80")),  # E10.9 under E10: 99% x 80 = 79.20
        id="ALD-E10.9-99-hierarchical-code",
    ),
    pytest.param(
        sheet(
            act("C", "100.00", exo="exo-1"),
            exonerations=(exoneration("ALD", "E11", d("2024-01-01"), d("2025-12-31")),),
        ),
        approved(paid("80.00", "56.00", "44.00")),  # exoneration ended: 70% x 80 = 56.00
        id="ALD-exoneration-ended-normal-rate",
    ),
    pytest.param(
        sheet(act("C", "100.00", exo="exo-1"), exonerations=(exoneration("ALD", "E11", DAY),)),
        approved(paid("80.00", "76.00", "24.00")),  # exoneration starts on the day: 95% x 80
        id="ALD-exoneration-starts-on-care-day",
    ),
    # ---- medicines -------------------------------------------------------------------------
    pytest.param(
        sheet(med(ZOVIRAX, "232.00")),
        # 70% x min(PPV 232, PBR 209) = 146.30; 232 - 146.30 = 85.70 (amo-rules.md §5.1)
        approved(paid("209.00", "146.30", "85.70")),
        id="medicine-ZOVIRAX-at-PBR",
    ),
    pytest.param(
        sheet(med(DOLIPRANE, "20.60", "2")),
        # 2 boxes: PBR 2 x 10.20 = 20.40; 70% x min(20.60, 20.40) = 14.28; 20.60 - 14.28
        approved(paid("20.40", "14.28", "6.32")),
        id="medicine-DOLIPRANE-two-boxes",
    ),
    pytest.param(
        sheet(med(CICLOVIRAL, "209.00", prescribed=ZOVIRAX)),
        approved(paid("209.00", "146.30", "62.70")),  # generic CICLOVIRAL: 70% x 209 = 146.30
        id="substitution-ZOVIRAX-to-CICLOVIRAL",
    ),
    pytest.param(
        sheet(med(BIOMOX_500, "39.80", prescribed=CLAMOXYL_500)),
        # priced on the dispensed generic: 70% x min(39.80, PBR 39.80) = 27.86 (not PBR 46.60)
        approved(paid("39.80", "27.86", "11.94")),
        id="substitution-CLAMOXYL-to-BIOMOX-priced-on-generic",
    ),
    pytest.param(
        sheet(med(PANADOL_500, "14.50", prescribed=DOLIPRANE)),
        # a film-coated tablet is in the plain tablet's group (PARACETAMOL 500 MG | COMPRIME,
        # 20 per box): priced on its own PBR, 70% x min(14.50, 11.70) = 8.19; 14.50 - 8.19
        approved(paid("11.70", "8.19", "6.31")),
        id="substitution-within-group-coating-ignored",
    ),
    pytest.param(
        sheet(med(TORVA_20_30, "224.00", prescribed=TAHOR_20)),
        # same group (ATORVASTATINE 20 MG | COMPRIME) but 30 tablets for 28: box for box, no
        nothing_paid(rejected(Reason.SUBSTITUTION_REFUSED, "224.00")),
        id="substitution-other-pack-size-R14",
    ),
    pytest.param(
        sheet(med(TAHOR_20_OTHER_CODE, "224.00", prescribed=TAHOR_20)),
        # the same pack under its other code is the prescribed product: 70% x 224 = 156.80
        approved(paid("224.00", "156.80", "67.20")),
        id="medicine-same-pack-under-its-other-code",
    ),
    pytest.param(
        sheet(med(ANDOL_C, "16.00")),
        # reimbursable, but the list gives no PBR: nothing to settle on, never a base of 0
        nothing_paid(rejected(Reason.NOT_IN_NOMENCLATURE, "16.00")),
        id="medicine-PBR-not-published-R04",
    ),
    pytest.param(
        sheet(med(CICLOVIRAL, "209.00", prescribed=ZOVIRAX, substitutable=False)),
        nothing_paid(rejected(Reason.SUBSTITUTION_REFUSED, "209.00")),
        id="substitution-not-substitutable-R14",
    ),
    pytest.param(
        sheet(med(DOLIPRANE, "10.30", prescribed=ZOVIRAX)),
        nothing_paid(rejected(Reason.SUBSTITUTION_REFUSED, "10.30")),  # PARACETAMOL != ACICLOVIR
        id="substitution-different-DCI-R14",
    ),
    pytest.param(
        sheet(med(STREPTOCID_500, "40.30", prescribed=CLAMOXYL_1G)),
        nothing_paid(rejected(Reason.SUBSTITUTION_REFUSED, "40.30")),  # 500 mg for 1 g
        id="substitution-different-strength-R14",
    ),
    pytest.param(
        sheet(med(DOLIPRANE, "30.90", "3", remaining="2")),
        nothing_paid(rejected(Reason.ABOVE_LIMIT, "30.90")),  # 3 boxes > 2 left to dispense
        id="medicine-quantity-above-remaining-R10",
    ),
    pytest.param(
        sheet(med(DOLIPRANE, "10.30", valid_until=d("2026-03-09"))),
        nothing_paid(rejected(Reason.PRESCRIPTION_EXPIRED, "10.30")),  # valid until the day before
        id="medicine-prescription-expired-R09",
    ),
    pytest.param(
        sheet(med(DOLIPRANE, "10.30", valid_until=DAY)),
        approved(paid("10.20", "7.14", "3.16")),  # valid on its last day: 70% x 10.20 = 7.14
        id="medicine-prescription-last-valid-day",
    ),
    pytest.param(
        sheet(med(DOLIPRANE_VITAMINE_C, "18.00")),
        nothing_paid(rejected(Reason.NOT_IN_NOMENCLATURE, "18.00")),  # list rate 0: not reimbursed
        id="medicine-not-reimbursable-R04",
    ),
    pytest.param(
        sheet(med(ZOVIRAX, "232.00"), regime="public"),
        # public sector: 70% of the public price, 70% x min(232, PPV 232) = 162.40
        approved(paid("232.00", "162.40", "69.60")),
        id="public-medicine-70-of-PPV",
    ),
    # ---- rights ----------------------------------------------------------------------------
    pytest.param(
        sheet(act("C", "150.00"), coverages=(period(status=CLOSED),)),
        error(Reason.RIGHTS_CLOSED, "150.00"),  # unpaid contributions
        id="closed-rights-R01-error",
    ),
    pytest.param(
        sheet(act("C", "150.00"), coverages=(period(start=d("2026-06-01")),)),
        error(Reason.RIGHTS_CLOSED, "150.00", opens_on=d("2026-06-01")),
        id="no-coverage-at-date-R01",
    ),
    pytest.param(
        sheet(
            act("C", "150.00"),
            coverages=(
                period(status=CLOSED, start=d("2026-01-01"), cid="cov-1"),
                period(status=OPEN, start=d("2025-01-01"), cid="cov-2"),
            ),
        ),
        approved(paid("80.00", "56.00", "94.00")),  # overlapping: the open period speaks
        id="closed-and-open-overlap-open-wins",
    ),
    pytest.param(
        sheet(act("C", "150.00"), deceased=d("2026-03-01")),
        error(Reason.RIGHTS_CLOSED, "150.00"),  # care after the beneficiary's death
        id="deceased-beneficiary-R01",
    ),
    pytest.param(
        sheet(
            act("C", "150.00"),
            coverages=(period("tns", STAGE, d("2026-01-01"), d("2026-03-31")),),
        ),
        error(Reason.WAITING_PERIOD, "150.00", opens_on=d("2026-04-01")),
        id="explicit-stage-R02",
    ),
    pytest.param(
        sheet(act("C", "150.00"), coverages=(period("tns", start=d("2026-02-01")),)),
        # TNS first opening 2026-02-01 + 3 months = 2026-05-01 > care 2026-03-10
        error(Reason.WAITING_PERIOD, "150.00", opens_on=d("2026-05-01")),
        id="tns-first-opening-waiting-R02",
    ),
    pytest.param(
        sheet(act("C", "150.00"), coverages=(period("achamil", start=d("2026-01-15")),)),
        # Achamil first opening 2026-01-15 + 3 months = 2026-04-15 > care 2026-03-10
        error(Reason.WAITING_PERIOD, "150.00", opens_on=d("2026-04-15")),
        id="achamil-first-opening-waiting-R02",
    ),
    pytest.param(
        sheet(act("C", "150.00"), coverages=(period("tns", start=d("2025-12-10")),)),
        # 2025-12-10 + 3 months = 2026-03-10: the waiting period is over on the care day
        approved(paid("80.00", "56.00", "94.00")),
        id="tns-waiting-ends-on-care-day",
    ),
    pytest.param(
        sheet(
            act("C", "150.00"),
            coverages=(
                period("tns", start=d("2025-01-01"), end=d("2026-01-31"), cid="cov-1"),
                period("tns", start=d("2026-02-01"), cid="cov-2"),
            ),
        ),
        approved(paid("80.00", "56.00", "94.00")),  # continues an open period: no waiting
        id="tns-period-continuing-open-one-no-waiting",
    ),
    pytest.param(
        sheet(
            act("C", "150.00"),
            coverages=(
                period("salaries", start=d("2015-01-01"), end=d("2026-01-31"), cid="cov-1"),
                period("tns", start=d("2026-02-01"), cid="cov-2"),
            ),
        ),
        approved(paid("80.00", "56.00", "94.00")),  # moving from another AMO scheme: no waiting
        id="salaries-to-tns-no-waiting",
    ),
    pytest.param(
        sheet(
            act("C", "150.00"),
            coverages=(
                period("salaries", MAINTAINED, d("2025-01-01"), maintained="job-loss"),
                period("tns", start=d("2026-02-01"), cid="cov-2"),
            ),
        ),
        # job-loss rights kept 6 months: 2025-01-01..2025-06-30, so the TNS opening on
        # 2026-02-01 is a fresh one: waiting until 2026-05-01 (amo-rules.md §2.3, §2.4)
        error(Reason.WAITING_PERIOD, "150.00", opens_on=d("2026-05-01")),
        id="tns-opening-after-expired-maintained-rights-waits-R02",
    ),
    pytest.param(
        sheet(
            act("C", "150.00", day=d("2026-04-30")),
            coverages=(period(status=MAINTAINED, start=d("2024-05-01"), maintained="death"),),
            received=d("2026-05-10"),
        ),
        # death: 24 months from 2024-05-01, last day 2026-04-30; 70% x 80 = 56.00
        approved(paid("80.00", "56.00", "94.00")),
        id="maintained-death-24-months-last-day",
    ),
    pytest.param(
        sheet(
            act("C", "150.00", day=d("2026-05-01")),
            coverages=(period(status=MAINTAINED, start=d("2024-05-01"), maintained="death"),),
            received=d("2026-05-10"),
        ),
        error(Reason.RIGHTS_CLOSED, "150.00"),  # day after the 24 months
        id="maintained-death-after-24-months-R01",
    ),
    pytest.param(
        sheet(
            act("C", "150.00", day=d("2026-03-31")),
            coverages=(period(status=MAINTAINED, start=d("2025-10-01"), maintained="job-loss"),),
            received=d("2026-04-10"),
        ),
        # job loss: 6 months from 2025-10-01, last day 2026-03-31; 70% x 80 = 56.00
        approved(paid("80.00", "56.00", "94.00")),
        id="maintained-job-loss-6-months-last-day",
    ),
    pytest.param(
        sheet(
            act("C", "150.00", day=d("2026-04-01")),
            coverages=(period(status=MAINTAINED, start=d("2025-10-01"), maintained="job-loss"),),
            received=d("2026-04-10"),
        ),
        error(Reason.RIGHTS_CLOSED, "150.00"),  # day after the 6 months
        id="maintained-job-loss-after-6-months-R01",
    ),
    pytest.param(
        sheet(
            act("C", "150.00"),
            coverages=(period(status=MAINTAINED, start=d("2025-03-11"), maintained="divorce"),),
        ),
        # divorce: 12 months from 2025-03-11, last day 2026-03-10 = care day; 70% x 80 = 56.00
        approved(paid("80.00", "56.00", "94.00")),
        id="maintained-divorce-12-months-last-day",
    ),
    pytest.param(
        sheet(
            act("C", "150.00"),
            coverages=(
                period("tns", STAGE, d("2025-12-01"), d("2026-02-28"), cid="cov-1"),
                period("tns", OPEN, d("2026-03-01"), cid="cov-2"),
            ),
        ),
        approved(paid("80.00", "56.00", "94.00")),  # stage served: rights open on 2026-03-01
        id="tns-open-after-served-stage-no-second-waiting",
    ),
    # ---- dependants ------------------------------------------------------------------------
    pytest.param(
        sheet(
            act("C", "150.00"),
            coverages=(period(relationship="child"),),
            birth=d("2004-03-11"),
        ),
        approved(paid("80.00", "56.00", "94.00")),  # 21 (22 tomorrow): covered
        id="child-21-covered",
    ),
    pytest.param(
        sheet(
            act("C", "150.00"),
            coverages=(period(relationship="child"),),
            birth=d("2004-03-10"),
        ),
        error(Reason.DEPENDANT_AGE, "150.00"),  # 22 today, not a student
        id="child-22-not-studying-R03",
    ),
    pytest.param(
        sheet(
            act("C", "150.00"),
            coverages=(period(relationship="child", condition="etudiant"),),
            birth=d("2001-01-01"),
        ),
        approved(paid("80.00", "56.00", "94.00")),  # student, 25
        id="student-25-covered",
    ),
    pytest.param(
        sheet(
            act("C", "150.00"),
            coverages=(period(relationship="child", condition="etudiant"),),
            birth=d("1999-03-11"),
        ),
        approved(paid("80.00", "56.00", "94.00")),  # student, 26 (27 tomorrow): up to 26
        id="student-26-covered",
    ),
    pytest.param(
        sheet(
            act("C", "150.00"),
            coverages=(period(relationship="child", condition="etudiant"),),
            birth=d("1999-01-01"),
        ),
        error(Reason.DEPENDANT_AGE, "150.00"),  # student, 27
        id="student-27-R03",
    ),
    pytest.param(
        sheet(
            act("C", "150.00"),
            coverages=(period(relationship="child", condition="handicape"),),
            birth=d("1996-01-01"),
        ),
        approved(paid("80.00", "56.00", "94.00")),  # disabled, 30: no age limit
        id="disabled-child-30-covered",
    ),
    # ---- tariff versions -------------------------------------------------------------------
    pytest.param(
        sheet(act("C", "200.00", day=d("2021-06-01")), received=d("2021-06-10")),
        # CNSS convention 2020: C = 150; 70% x min(200, 150) = 105.00
        approved(paid("150.00", "105.00", "95.00"), versions=("tnr-cnss-2020",)),
        id="cnss-C-2021-convention-150",
    ),
    pytest.param(
        sheet(act("C", "200.00", day=d("2024-01-12")), received=d("2024-01-20")),
        approved(paid("150.00", "105.00", "95.00"), versions=("tnr-cnss-2020",)),  # last day
        id="cnss-C-2024-01-12-last-day-of-convention",
    ),
    pytest.param(
        sheet(act("C", "200.00", day=d("2024-01-13")), received=d("2024-01-20")),
        approved(paid("80.00", "56.00", "144.00"), versions=("tnr-2006",)),  # back to 2006: 80
        id="cnss-C-2024-01-13-back-to-2006",
    ),
    pytest.param(
        sheet(act("C", "200.00", day=d("2026-11-20")), received=d("2026-11-25")),
        approved(paid("80.00", "56.00", "144.00"), versions=("tnr-2006",)),  # 70% x 80 = 56.00
        id="cnss-C-2026-tnr-2006-80",
    ),
    pytest.param(
        sheet(act("C", "200.00", day=d("2021-06-01")), regime="public", received=d("2021-06-10")),
        # the 2020 convention is CNSS only: public C = 80; 80% x min(200, 80) = 64.00
        approved(paid("80.00", "64.00", "136.00"), versions=("tnr-2006",)),
        id="public-C-2021-tnr-2006-80",
    ),
    pytest.param(
        sheet(
            act("Cs", "300.00", day=d("2021-06-01")),
            specialties=(DERMATOLOGY,),
            received=d("2021-06-10"),
        ),
        # CNSS convention 2020: Cs = 250; 70% x min(300, 250) = 175.00
        approved(paid("250.00", "175.00", "125.00"), versions=("tnr-cnss-2020",)),
        id="cnss-Cs-2021-convention-250",
    ),
    pytest.param(
        sheet(
            flat("hospitalisation-medicale", "2000.00", "2", day=d("2023-06-01")),
            received=d("2023-06-15"),
        ),
        # CNSS convention 2020: 850 / day; 2 x 850 = 1700; 70% x min(2000, 1700) = 1190.00
        approved(paid("1700.00", "1190.00", "810.00"), versions=("tnr-cnss-2020",)),
        id="cnss-hospital-day-2023-convention-850",
    ),
    pytest.param(
        sheet(
            act("K", "450.00", "20", day=d("2021-06-01")),
            specialties=(SURGERY,),
            received=d("2021-06-10"),
        ),
        # K is not restated by the 2020 convention: K20 = 20 x 22.50 = 450; 70% = 315.00
        approved(paid("450.00", "315.00", "135.00"), versions=("tnr-2006",)),
        id="cnss-K20-2021-kept-from-2006",
    ),
    # ---- duplicates, filing deadline, rounding, guaranteed rights --------------------------
    pytest.param(
        sheet(
            act("C", "150.00"),
            history=History(settled_acts=frozenset({(PROVIDER, DAY, "C", Decimal("1"))})),
        ),
        nothing_paid(rejected(Reason.DUPLICATE, "150.00")),  # already settled
        id="duplicate-of-settled-act-R06",
    ),
    pytest.param(
        sheet(
            act("Z", "150.00", "15"),
            specialties=(RADIOLOGY,),
            history=History(settled_acts=frozenset({(PROVIDER, DAY, "Z", Decimal("20"))})),
        ),
        approved(paid("150.00", "105.00", "45.00")),  # other coefficient: 70% x 150 = 105.00
        id="settled-act-other-coefficient-not-duplicate",
    ),
    pytest.param(
        sheet(act("C", "150.00"), act("C", "150.00")),
        # line 1: 70% x 80 = 56.00; line 2 R06; totals 56.00 / 94 + 150 = 244.00
        approved(paid("80.00", "56.00", "94.00"), rejected(Reason.DUPLICATE, "150.00")),
        id="duplicate-within-sheet-R06",
    ),
    pytest.param(
        sheet(act("C", "150.00", day=d("2026-09-01")), received=d("2026-11-02")),
        error(Reason.FILING_DEADLINE, "150.00"),  # 2026-09-01 + 2 months = 2026-11-01
        id="filing-deadline-exceeded-R07",
    ),
    pytest.param(
        sheet(act("C", "150.00", day=d("2026-09-01")), received=d("2026-11-01")),
        approved(paid("80.00", "56.00", "94.00")),  # received on the last day
        id="filing-deadline-last-day-ok",
    ),
    pytest.param(
        sheet(
            act("C", "150.00", day=d("2005-06-01")),
            coverages=(period(start=d("2005-01-01")),),
            received=d("2006-01-10"),
        ),
        # 2005-06-01 + 2 months = 2005-08-01 < 2006-01-10: late, whatever the rights then
        error(Reason.FILING_DEADLINE, "150.00"),
        id="filing-deadline-exceeded-care-before-first-rights-rules-R07",
    ),
    pytest.param(
        sheet(act("C", "12.35")),
        approved(paid("12.35", "8.65", "3.70")),  # 70% x 12.35 = 8.645 -> 8.65 (half up)
        id="rounding-half-up-8.645",
    ),
    pytest.param(
        sheet(act("C", "12.35", exo="exo-1"), exonerations=(exoneration("ALD", "E11"),)),
        approved(paid("12.35", "11.73", "0.62")),  # 95% x 12.35 = 11.7325 -> 11.73
        id="rounding-down-11.7325",
    ),
    pytest.param(
        sheet(act("K", "33.75", "1.5"), specialties=(SURGERY,)),
        # K1.5 = 1.5 x 22.50 = 33.75; 70% x 33.75 = 23.625 -> 23.63; 33.75 - 23.63 = 10.12
        approved(paid("33.75", "23.63", "10.12")),
        id="rounding-half-up-K1.5",
    ),
    pytest.param(
        sheet(
            act("C", "150.00"),
            coverages=(period(status=CLOSED),),
            guaranteed=Rights(True, None, "éligibilité confirmée", "salaries", "cov-1"),
        ),
        approved(paid("80.00", "56.00", "94.00")),  # confirmed at the point of care: honoured
        id="guaranteed-rights-honoured-although-closed",
    ),
    pytest.param(
        sheet(
            act("C", "150.00"),
            coverages=(period(status=CLOSED),),
            guaranteed=Rights(True, None, "éligibilité confirmée", None, "cov-1"),
        ),
        # an "open" answer naming no regime gives no rate to apply, and the registry says
        # closed: either way the line is refused on rights, R01, and the sheet is an error
        error(Reason.RIGHTS_CLOSED, "150.00"),
        id="guaranteed-rights-without-regime-R01",
    ),
    # ---- anomaly holds ---------------------------------------------------------------------
    pytest.param(
        sheet(act("C", "150.00"), provider_start=d("2026-04-01")),
        held(paid("80.00", "56.00", "94.00"), rules={"before_provider_start"}),
        id="hold-act-before-provider-start",
    ),
    pytest.param(
        sheet(act("C", "150.00"), provider_start=DAY),
        approved(paid("80.00", "56.00", "94.00")),  # installed that very day: no hold
        id="no-hold-act-on-provider-start-day",
    ),
    pytest.param(
        sheet(act("CsC", "190.00"), provider_start=d("2026-04-01")),
        # the only line is rejected (R08): nothing to hold, the sheet is decided
        nothing_paid(rejected(Reason.PRACTITIONER_NOT_ALLOWED, "190.00")),
        id="no-hold-when-every-line-rejected",
    ),
    pytest.param(
        sheet(
            act("C", "150.00"),
            history=History(provider_acts_on_day=40, peer_acts_per_provider_day=Decimal("10")),
        ),
        # 40 + 1 = 41 acts > max(40, 3 x 10 = 30) = 40
        held(paid("80.00", "56.00", "94.00"), rules={"practitioner_daily_volume"}),
        id="hold-daily-volume-above-40",
    ),
    pytest.param(
        sheet(
            act("C", "150.00"),
            history=History(provider_acts_on_day=40, peer_acts_per_provider_day=Decimal("20")),
        ),
        approved(paid("80.00", "56.00", "94.00")),  # 41 <= max(40, 3 x 20 = 60)
        id="no-hold-daily-volume-within-3x-peers",
    ),
    pytest.param(
        sheet(
            act("C", "150.00"),
            history=History(provider_acts_on_day=60, peer_acts_per_provider_day=Decimal("20")),
        ),
        # 60 + 1 = 61 > max(40, 60) = 60
        held(paid("80.00", "56.00", "94.00"), rules={"practitioner_daily_volume"}),
        id="hold-daily-volume-above-3x-peers",
    ),
    pytest.param(
        sheet(med(HERCEPTIN, "6890.00"), specialties=(ONCOLOGY,)),
        # PPV 6890 >= 2000 without ALD/ALC; 70% x 6890 = 4823.00; 6890 - 4823 = 2067.00
        held(paid("6890.00", "4823.00", "2067.00"), rules={"costly_medicine"}),
        id="hold-costly-medicine-without-exoneration",
    ),
    pytest.param(
        sheet(
            med(HERCEPTIN, "6890.00", exo="exo-1"),
            specialties=(ONCOLOGY,),
            exonerations=(exoneration("ALC", "C50"),),
        ),
        approved(paid("6890.00", "6890.00", "0.00")),  # ALC C50 in force: 100%, no hold
        id="no-hold-costly-medicine-under-ALC",
    ),
    pytest.param(
        sheet(
            med(HERCEPTIN, "6890.00", exo="exo-1"),
            specialties=(ONCOLOGY,),
            exonerations=(exoneration("ALC", "C50", start=d("2026-06-01")),),
        ),
        # the ALC is not recognised yet on 2026-03-10: normal rate 70% x 6890 = 4823.00,
        # and the costly medicine is outside a recognised ALD/ALC, so it is held
        held(paid("6890.00", "4823.00", "2067.00"), rules={"costly_medicine"}),
        id="hold-costly-medicine-exoneration-not-in-force",
    ),
    pytest.param(
        sheet(act("C", "150.00"), history=History(recent_consultations=6)),
        # 6 + 1 = 7 consultations in 30 days > 6
        held(paid("80.00", "56.00", "94.00"), rules={"beneficiary_frequency"}),
        id="hold-beneficiary-frequency-7th-consultation",
    ),
    pytest.param(
        sheet(act("C", "150.00"), history=History(recent_consultations=5)),
        approved(paid("80.00", "56.00", "94.00")),  # 5 + 1 = 6: not above 6
        id="no-hold-beneficiary-frequency-6th-consultation",
    ),
    pytest.param(
        sheet(act("C", "150.00"), history=History(provider_same_amount_today=14)),
        # 14 + 1 = 15th claim of the day with the same amount >= 15
        held(paid("80.00", "56.00", "94.00"), rules={"identical_amounts"}),
        id="hold-identical-amounts-15th-claim",
    ),
    pytest.param(
        sheet(act("C", "150.00"), history=History(provider_same_amount_today=13)),
        approved(paid("80.00", "56.00", "94.00")),  # 14th claim: below 15
        id="no-hold-identical-amounts-14th-claim",
    ),
]


@pytest.mark.parametrize(("care_sheet", "expected"), CASES)
def test_adjudication_case(care_sheet: CareSheet, expected: Outcome) -> None:
    decision = adjudicate(care_sheet, default_books())

    got_lines = [
        (
            line.sequence,
            str(line.eligible),
            str(line.benefit),
            str(line.patient_share),
            line.reasons,
        )
        for line in decision.lines
    ]
    want_lines = [
        (i, e.eligible, e.benefit, e.patient_share, e.reasons)
        for i, e in enumerate(expected.lines, start=1)
    ]
    assert got_lines == want_lines
    assert (decision.outcome, decision.status) == (expected.outcome, expected.status)
    assert decision.payee == expected.payee
    assert tuple(reason for reason, _ in decision.errors) == expected.errors
    assert {hold.rule for hold in decision.holds} == expected.holds

    billed = sum((line.billed for line in care_sheet.lines), Decimal("0.00"))
    benefit = sum((Decimal(e.benefit) for e in expected.lines), Decimal("0.00"))
    share = sum((Decimal(e.patient_share) for e in expected.lines), Decimal("0.00"))
    eligible = sum((Decimal(e.eligible) for e in expected.lines), Decimal("0.00"))
    assert (decision.billed, decision.eligible, decision.benefit, decision.patient_share) == (
        billed,
        eligible,
        benefit,
        share,
    )
    assert benefit + share == billed

    rights_error = expected.errors and expected.errors[0] != Reason.FILING_DEADLINE
    if rights_error and care_sheet.guaranteed is None:
        assert decision.rights.reason == expected.errors[0]
        assert not decision.rights.open
    if expected.opens_on is not None:
        assert decision.rights.opens_on == expected.opens_on
    if expected.versions is not None:
        assert tuple(line.tariff_version for line in decision.lines) == expected.versions


def test_a_line_above_its_act_says_by_how_much() -> None:
    decision = adjudicate(
        sheet(act("K", "2025.00", "90.0", named="J203"), specialties=(SURGERY,)), default_books()
    )
    assert decision.lines[0].note == "coefficient 90 > 82 pour l'acte J203"


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 36
    ids = [case.id for case in CASES]
    assert len(set(ids)) == len(ids)
