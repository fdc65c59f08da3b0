"""pain.001.001.03 writer: structure and values as a bank would parse them, checks, streaming."""

from __future__ import annotations

import io
import tracemalloc
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from fhir_profiles.identifiers import iban_from_rib, iban_problem, rib_key
from reimbursement.pain001 import BatchHeader, Debtor, Transfer, write_pain001

NS = {"p": "urn:iso:std:iso:20022:tech:xsd:pain.001.001.03"}
CASABLANCA = timezone(timedelta(hours=1))


def rib(bank: int, city: int, account: int) -> str:
    base22 = f"{bank:03d}{city:03d}{account:016d}"
    return base22 + rib_key(base22)


def iban(account: int) -> str:
    return iban_from_rib(rib(7, 780, account))


CNSS_IBAN = iban_from_rib(rib(11, 780, 1234567890))


def header(count: int, total: str, **changes: object) -> BatchHeader:
    base = BatchHeader(
        message_id="CNSS-AMO-2025-03-0001",
        created_at=datetime(2025, 3, 31, 18, 5, 7, 123456, tzinfo=CASABLANCA),
        execution_date=date(2025, 4, 2),
        payment_info_id="PMT-2025-03-0001",
        transaction_count=count,
        control_sum=Decimal(total),
        debtor=Debtor(name="CNSS - Assurance Maladie Obligatoire", iban=CNSS_IBAN),
    )
    return replace(base, **changes)


def transfer(number: int, amount: str = "100.00", **changes: object) -> Transfer:
    base = Transfer(
        end_to_end_id=f"FSE-2025-{number:09d}",
        amount=Decimal(amount),
        creditor_name=f"Assuré {number}",
        creditor_iban=iban(number),
        remittance=f"Remboursement AMO dossier {number}",
    )
    return replace(base, **changes)


def write(batch: BatchHeader, transfers: list[Transfer]) -> tuple[bytes, tuple[int, Decimal]]:
    out = io.BytesIO()
    result = write_pain001(out, batch, transfers)
    return out.getvalue(), result


def text(element: ET.Element, path: str) -> str | None:
    return element.findtext(path, namespaces=NS)


def test_valid_ibans_are_built_for_the_tests() -> None:
    assert iban_problem(CNSS_IBAN) is None
    assert iban_problem(iban(42)) is None
    assert len(iban(42)) == 28


def test_group_header_payment_information_and_transactions() -> None:
    transfers = [
        transfer(1, "150.00"),
        transfer(2, "0.01", creditor_name="Clinique Al Amal", remittance="Tiers payant mars"),
        transfer(3, "12345.60"),
    ]
    data, result = write(header(3, "12495.61"), transfers)

    assert result == (3, Decimal("12495.61"))
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(data)
    assert root.tag == "{urn:iso:std:iso:20022:tech:xsd:pain.001.001.03}Document"

    group = root.find("p:CstmrCdtTrfInitn/p:GrpHdr", NS)
    assert group is not None
    assert text(group, "p:MsgId") == "CNSS-AMO-2025-03-0001"
    assert text(group, "p:CreDtTm") == "2025-03-31T18:05:07+01:00"
    assert text(group, "p:NbOfTxs") == "3"
    assert text(group, "p:CtrlSum") == "12495.61"
    assert text(group, "p:InitgPty/p:Nm") == "CNSS - Assurance Maladie Obligatoire"

    payments = root.findall("p:CstmrCdtTrfInitn/p:PmtInf", NS)
    assert len(payments) == 1
    payment = payments[0]
    assert [child.tag.split("}")[1] for child in payment] == [
        "PmtInfId",
        "PmtMtd",
        "BtchBookg",
        "NbOfTxs",
        "CtrlSum",
        "PmtTpInf",
        "ReqdExctnDt",
        "Dbtr",
        "DbtrAcct",
        "DbtrAgt",
        "ChrgBr",
        "CdtTrfTxInf",
        "CdtTrfTxInf",
        "CdtTrfTxInf",
    ]
    assert text(payment, "p:PmtInfId") == "PMT-2025-03-0001"
    assert text(payment, "p:PmtMtd") == "TRF"
    assert text(payment, "p:BtchBookg") == "true"
    assert text(payment, "p:NbOfTxs") == "3"
    assert text(payment, "p:CtrlSum") == "12495.61"
    assert text(payment, "p:PmtTpInf/p:InstrPrty") == "NORM"
    assert text(payment, "p:ReqdExctnDt") == "2025-04-02"
    assert text(payment, "p:Dbtr/p:Nm") == "CNSS - Assurance Maladie Obligatoire"
    assert text(payment, "p:DbtrAcct/p:Id/p:IBAN") == CNSS_IBAN
    assert text(payment, "p:DbtrAgt/p:FinInstnId/p:Othr/p:Id") == "NOTPROVIDED"
    assert payment.find("p:DbtrAgt/p:FinInstnId/p:BIC", NS) is None
    assert text(payment, "p:ChrgBr") == "SLEV"

    rows = payment.findall("p:CdtTrfTxInf", NS)
    for row, sent in zip(rows, transfers, strict=True):
        assert text(row, "p:PmtId/p:EndToEndId") == sent.end_to_end_id
        amount = row.find("p:Amt/p:InstdAmt", NS)
        assert amount is not None
        assert amount.get("Ccy") == "MAD"
        assert amount.text == str(sent.amount)
        assert text(row, "p:CdtrAgt/p:FinInstnId/p:Othr/p:Id") == "NOTPROVIDED"
        assert text(row, "p:Cdtr/p:Nm") == sent.creditor_name
        assert text(row, "p:CdtrAcct/p:Id/p:IBAN") == sent.creditor_iban
        assert text(row, "p:RmtInf/p:Ustrd") == sent.remittance
    assert [text(row, "p:Amt/p:InstdAmt") for row in rows] == ["150.00", "0.01", "12345.60"]
    assert sum(Decimal(text(row, "p:Amt/p:InstdAmt") or "") for row in rows) == Decimal(
        text(group, "p:CtrlSum") or ""
    )


def test_debtor_bic_is_written_when_given_and_ibans_are_compacted() -> None:
    spaced = " ".join(CNSS_IBAN[i : i + 4] for i in range(0, 28, 4))
    debtor = Debtor(name="CNSS", iban=spaced, bic="BCMAMAMC")
    data, _ = write(header(1, "10.00", debtor=debtor), [transfer(1, "10.00")])
    payment = ET.fromstring(data).find("p:CstmrCdtTrfInitn/p:PmtInf", NS)
    assert payment is not None
    assert text(payment, "p:DbtrAgt/p:FinInstnId/p:BIC") == "BCMAMAMC"
    assert payment.find("p:DbtrAgt/p:FinInstnId/p:Othr", NS) is None
    assert text(payment, "p:DbtrAcct/p:Id/p:IBAN") == CNSS_IBAN


def test_markup_characters_are_escaped() -> None:
    name = "Pharmacie <Al Qods> & Fils"
    remittance = 'Facture <12> & "avoir" > 0'
    debtor = Debtor(name="CNSS & <AMO>", iban=CNSS_IBAN)
    batch = header(1, "99.90", debtor=debtor, message_id="MSG&<1>")
    sent = transfer(7, "99.90", creditor_name=name, remittance=remittance, end_to_end_id="E2E&<7>")
    data, _ = write(batch, [sent])

    assert b"Pharmacie &lt;Al Qods&gt; &amp; Fils" in data
    assert b"<Al Qods>" not in data
    root = ET.fromstring(data)
    assert text(root, ".//p:GrpHdr/p:MsgId") == "MSG&<1>"
    assert text(root, ".//p:GrpHdr/p:InitgPty/p:Nm") == "CNSS & <AMO>"
    row = root.find(".//p:CdtTrfTxInf", NS)
    assert row is not None
    assert text(row, "p:PmtId/p:EndToEndId") == "E2E&<7>"
    assert text(row, "p:Cdtr/p:Nm") == name
    assert text(row, "p:RmtInf/p:Ustrd") == remittance


def test_names_and_remittance_are_truncated_by_characters_not_by_escaped_bytes() -> None:
    sent = [
        transfer(1, creditor_name="N" * 100, remittance="R" * 300),
        transfer(2, creditor_name="&" * 80, remittance="é<" * 100),
    ]
    data, _ = write(header(2, "200.00"), sent)
    rows = ET.fromstring(data).findall(".//p:CdtTrfTxInf", NS)
    assert text(rows[0], "p:Cdtr/p:Nm") == "N" * 70
    assert text(rows[0], "p:RmtInf/p:Ustrd") == "R" * 140
    assert text(rows[1], "p:Cdtr/p:Nm") == "&" * 70
    assert text(rows[1], "p:RmtInf/p:Ustrd") == "é<" * 70


def test_blanks_and_characters_xml_cannot_carry_are_cleaned() -> None:
    sent = transfer(1, creditor_name="  Fatima\x00 \t El\nAlaoui \x1f", remittance="Dossier\r\n42")
    data, _ = write(header(1, "100.00"), [sent])
    row = ET.fromstring(data).find(".//p:CdtTrfTxInf", NS)
    assert row is not None
    assert text(row, "p:Cdtr/p:Nm") == "Fatima El Alaoui"
    assert text(row, "p:RmtInf/p:Ustrd") == "Dossier 42"


@pytest.mark.parametrize(
    ("count", "total", "message"),
    [
        (3, "300.00", "announces 3 transfers but 2"),
        (1, "200.00", "announces 1 transfers but more"),
        (2, "200.01", "control sum of 200.01"),
    ],
)
def test_header_totals_that_do_not_match_the_transfers_are_refused(
    count: int, total: str, message: str
) -> None:
    out = io.BytesIO()
    with pytest.raises(ValueError, match=message):
        write_pain001(out, header(count, total), [transfer(1), transfer(2)])
    assert b"</Document>" not in out.getvalue()


@pytest.mark.parametrize(
    "bad_iban",
    [
        "MA00" + rib(7, 780, 5),  # wrong IBAN check digits
        iban_from_rib(rib(7, 780, 5)[:-2] + "00"),  # IBAN checks right, RIB key wrong
        "FR7630006000011234567890189",  # not Moroccan
        iban(5)[:-1],  # too short
    ],
)
def test_a_bad_creditor_iban_is_refused_naming_the_transfer(bad_iban: str) -> None:
    out = io.BytesIO()
    batch = header(2, "200.00")
    with pytest.raises(ValueError, match=r"FSE-2025-000000002.*IBAN"):
        write_pain001(out, batch, [transfer(1), transfer(2, creditor_iban=bad_iban)])


def test_a_bad_debtor_iban_or_bic_is_refused_before_writing() -> None:
    out = io.BytesIO()
    bad_iban = Debtor(name="CNSS", iban="MA00" + CNSS_IBAN[4:])
    with pytest.raises(ValueError, match="debtor IBAN"):
        write_pain001(out, header(1, "100.00", debtor=bad_iban), [transfer(1)])
    bad_bic = Debtor(name="CNSS", iban=CNSS_IBAN, bic="not a bic")
    with pytest.raises(ValueError, match="BIC"):
        write_pain001(out, header(1, "100.00", debtor=bad_bic), [transfer(1)])
    assert out.getvalue() == b""


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        (Decimal("10.005"), "exactly 2 decimal places"),
        (Decimal("10.5"), "exactly 2 decimal places"),
        (Decimal("10"), "exactly 2 decimal places"),
        (Decimal("0.00"), "greater than 0"),
        (Decimal("-5.00"), "greater than 0"),
        (Decimal("NaN"), "finite"),
        (10.5, "finite Decimal"),
        (Decimal("1234567890123456789.00"), "18 digits"),
    ],
)
def test_a_bad_amount_is_refused(amount: object, message: str) -> None:
    with pytest.raises(ValueError, match=rf"FSE-2025-000000001.*amount.*{message}"):
        write(header(1, "10.00"), [replace(transfer(1), amount=amount)])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"message_id": "M" * 36}, "message_id"),
        ({"message_id": ""}, "message_id"),
        ({"payment_info_id": "P" * 36}, "payment_info_id"),
        ({"created_at": datetime(2025, 3, 31, 18, 5)}, "timezone-aware"),
        ({"transaction_count": 0}, "transaction_count"),
        ({"control_sum": Decimal("100.001")}, "control_sum"),
        ({"control_sum": Decimal("-100.00")}, "control_sum"),
        ({"debtor": Debtor(name="  ", iban=CNSS_IBAN)}, "debtor name"),
    ],
)
def test_a_bad_header_is_refused_before_writing(changes: dict[str, object], message: str) -> None:
    out = io.BytesIO()
    with pytest.raises(ValueError, match=message):
        write_pain001(out, header(1, "100.00", **changes), [transfer(1)])
    assert out.getvalue() == b""


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"end_to_end_id": "E" * 36}, "end_to_end_id"),
        ({"end_to_end_id": ""}, "end_to_end_id"),
        ({"creditor_name": " \t "}, "creditor name is blank"),
    ],
)
def test_a_bad_transfer_field_is_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        write(header(1, "100.00"), [transfer(1, **changes)])


def test_a_blank_remittance_leaves_out_the_remittance_block() -> None:
    data, _ = write(header(1, "100.00"), [transfer(1, remittance="   ")])
    row = ET.fromstring(data).find(".//p:CdtTrfTxInf", NS)
    assert row is not None
    assert row.find("p:RmtInf", NS) is None


def test_an_utc_timestamp_is_written_with_its_offset() -> None:
    stamp = datetime(2025, 1, 2, 3, 4, 5, 999999, tzinfo=UTC)
    data, _ = write(header(1, "100.00", created_at=stamp), [transfer(1)])
    assert text(ET.fromstring(data), ".//p:GrpHdr/p:CreDtTm") == "2025-01-02T03:04:05+00:00"


STREAMED = 100_000


def test_a_hundred_thousand_transfers_stream_in_flat_memory(tmp_path: Path) -> None:
    pool = [(iban(n), f"Assuré numéro {n}", f"Remboursement AMO dossier {n}") for n in range(101)]
    amount = Decimal("123.45")

    def transfers() -> Iterator[Transfer]:
        for n in range(STREAMED):
            creditor_iban, name, remittance = pool[n % 101]
            yield Transfer(f"FSE-{n}", amount, name, creditor_iban, remittance)

    batch = header(STREAMED, str(amount * STREAMED))
    path = tmp_path / "pain001.xml"
    tracemalloc.start()
    try:
        with path.open("wb") as out:
            result = write_pain001(out, batch, transfers())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert result == (STREAMED, amount * STREAMED)
    assert peak < 5 * 1024 * 1024, f"peak traced memory {peak} bytes"
    size = path.stat().st_size
    assert size > 25 * 1024 * 1024  # the file is far bigger than the memory used to write it
    rows = 0
    tail = b""
    with path.open("rb") as written:
        while chunk := written.read(1 << 20):
            rows += (tail + chunk).count(b"<CdtTrfTxInf>") - tail.count(b"<CdtTrfTxInf>")
            tail = chunk[-16:]
    assert rows == STREAMED
    assert tail.endswith(b"</Document>\n")
