"""Streaming writer of ISO 20022 ``pain.001.001.03`` credit transfers: CNSS reimbursements in MAD.

A monthly run can pay a million insured persons and providers, so each transfer is written as it
comes from the iterable, through plain string templates and a small buffer, never an XML tree:
memory stays flat whatever the count. The header's count and control sum are written first and
checked at the end, before the closing tags, so a file that contradicts them is left unclosed.
Creditor agents are ``Othr/Id NOTPROVIDED`` because a Moroccan RIB (and the IBAN built from it)
names the bank by a 3-digit code and carries no BIC.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import BinaryIO
from xml.sax.saxutils import escape

from fhir_profiles.identifiers import iban_problem

NAMESPACE = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.03"
CURRENCY = "MAD"
MAX_ID = 35
MAX_NAME = 70
MAX_REMITTANCE = 140
MAX_AMOUNT_DIGITS = 18
"""ActiveOrHistoricCurrencyAndAmount and DecimalNumber: at most 18 digits in all."""
MAX_COUNT_DIGITS = 15
"""NbOfTxs is Max15NumericText."""
FLUSH_ROWS = 256
"""Transfers encoded and written at once (about 100 kB)."""
IBAN_CACHE_SIZE = 4096
CENTIME = Decimal("0.01")
REMITTANCE_TAGS = ("<RmtInf><Ustrd>", "</Ustrd></RmtInf>")
NOT_PROVIDED_AGENT = "<FinInstnId><Othr><Id>NOTPROVIDED</Id></Othr></FinInstnId>"

BIC_RE = re.compile(r"^[A-Z]{6}[A-Z2-9][A-NP-Z0-9]([A-Z0-9]{3})?$")
NOT_XML_CHAR_RE = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True)
class Debtor:
    """The payer (CNSS)."""

    name: str
    """Truncated to 70 characters (InitgPty and Dbtr)."""
    iban: str
    bic: str | None = None
    """None: the debtor agent is written as ``Othr/Id NOTPROVIDED``."""


@dataclass(frozen=True)
class Transfer:
    end_to_end_id: str
    """1 to 35 characters, checked."""
    amount: Decimal
    """Greater than 0 with exactly 2 decimal places, checked."""
    creditor_name: str
    """Truncated to 70 characters."""
    creditor_iban: str
    """Moroccan IBAN, checked."""
    remittance: str
    """Unstructured remittance text, truncated to 140 characters (omitted when blank)."""


@dataclass(frozen=True)
class BatchHeader:
    message_id: str
    """1 to 35 characters."""
    created_at: datetime
    """Timezone-aware; written as ISO 8601 without microseconds."""
    execution_date: date
    payment_info_id: str
    """1 to 35 characters."""
    transaction_count: int
    """Must equal the number of transfers written (checked at the end)."""
    control_sum: Decimal
    """Must equal the sum of the amounts written (checked at the end)."""
    debtor: Debtor


def _text(value: str, limit: int) -> str:
    """Characters XML cannot carry and runs of blanks become one space; cut to ``limit``."""
    if (
        len(value) <= limit
        and value.isprintable()  # no control, separator or unassigned character but " "
        and "  " not in value
        and value[:1] != " "
        and value[-1:] != " "
    ):
        return value
    cleaned = " ".join(NOT_XML_CHAR_RE.sub(" ", value).split())
    return cleaned[:limit].rstrip()


def _identifier_problem(value: str) -> str | None:
    if not 1 <= len(value) <= MAX_ID:
        return f"must have 1 to {MAX_ID} characters"
    if not value.isprintable() and NOT_XML_CHAR_RE.search(value):
        return "holds a character XML cannot carry"
    return None


def _identifier(value: str, what: str) -> str:
    problem = _identifier_problem(value)
    if problem is not None:
        raise ValueError(f"{what} {problem}: {value!r}")
    return escape(value)


def _name(value: str, what: str) -> str:
    name = _text(value, MAX_NAME)
    if not name:
        raise ValueError(f"{what} is blank")
    return escape(name)


@lru_cache(maxsize=IBAN_CACHE_SIZE)
def _iban_problem(value: str) -> str | None:
    """The project's IBAN rule, remembered for the last accounts seen: a pharmacy or a clinic is
    paid many times in one run, and the check costs more than writing the transfer."""
    return iban_problem(value)


def _debtor_iban(value: str) -> str:
    problem = _iban_problem(value)
    if problem is not None:
        raise ValueError(f"debtor IBAN: {problem}: {value!r}")
    return value.replace(" ", "")


def _amount_text(amount: Decimal) -> str | None:
    """The amount as written (``123.45``), or None unless it is a positive amount in centimes of
    at most 18 digits. Checked on the text that is written anyway: cheap for a million rows."""
    if not isinstance(amount, Decimal):
        return None
    text = str(amount)  # "123.45" exactly when finite, not negative and 2 decimal places
    dot = text.find(".")
    if 1 <= dot == len(text) - 3 <= MAX_AMOUNT_DIGITS - 2 and text[0] != "-" and "E" not in text:
        return text if amount else None
    return None


def _amount_problem(amount: Decimal) -> str:
    """Why ``_amount_text`` refused the amount."""
    if not isinstance(amount, Decimal) or not amount.is_finite():
        return "is not a finite Decimal"
    if amount <= 0:
        return "is not greater than 0"
    if amount.as_tuple().exponent != -2:
        return "does not have exactly 2 decimal places"
    return f"has more than {MAX_AMOUNT_DIGITS} digits"


def _control_sum_problem(value: Decimal) -> str | None:
    if not isinstance(value, Decimal) or not value.is_finite():
        return "is not a finite Decimal"
    if value <= 0:
        return "is not greater than 0"
    if value.adjusted() >= MAX_AMOUNT_DIGITS - 2:
        return f"has more than {MAX_AMOUNT_DIGITS} digits"
    if value != value.quantize(CENTIME):
        return "is not a whole number of centimes"
    return None


def _header_xml(header: BatchHeader) -> str:
    debtor = header.debtor
    if header.created_at.tzinfo is None or header.created_at.utcoffset() is None:
        raise ValueError("created_at must be timezone-aware")
    if not 1 <= header.transaction_count < 10**MAX_COUNT_DIGITS:
        raise ValueError(f"transaction_count must be 1 to 15 digits: {header.transaction_count}")
    problem = _control_sum_problem(header.control_sum)
    if problem is not None:
        raise ValueError(f"control_sum {problem}: {header.control_sum!r}")
    if debtor.bic is None:
        debtor_agent = NOT_PROVIDED_AGENT
    elif BIC_RE.match(debtor.bic):
        debtor_agent = f"<FinInstnId><BIC>{debtor.bic}</BIC></FinInstnId>"
    else:
        raise ValueError(f"debtor BIC is not a valid BIC: {debtor.bic!r}")
    debtor_name = _name(debtor.name, "debtor name")
    count = str(header.transaction_count)
    total = f"{header.control_sum.quantize(CENTIME)}"
    created = header.created_at.replace(microsecond=0).isoformat()
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<Document xmlns="{NAMESPACE}"><CstmrCdtTrfInitn>'
        f"<GrpHdr><MsgId>{_identifier(header.message_id, 'message_id')}</MsgId>"
        f"<CreDtTm>{created}</CreDtTm><NbOfTxs>{count}</NbOfTxs><CtrlSum>{total}</CtrlSum>"
        f"<InitgPty><Nm>{debtor_name}</Nm></InitgPty></GrpHdr>\n"
        f"<PmtInf><PmtInfId>{_identifier(header.payment_info_id, 'payment_info_id')}</PmtInfId>"
        f"<PmtMtd>TRF</PmtMtd><BtchBookg>true</BtchBookg>"
        f"<NbOfTxs>{count}</NbOfTxs><CtrlSum>{total}</CtrlSum>"
        f"<PmtTpInf><InstrPrty>NORM</InstrPrty></PmtTpInf>"
        f"<ReqdExctnDt>{header.execution_date.isoformat()}</ReqdExctnDt>"
        f"<Dbtr><Nm>{debtor_name}</Nm></Dbtr>"
        f"<DbtrAcct><Id><IBAN>{_debtor_iban(debtor.iban)}</IBAN></Id></DbtrAcct>"
        f"<DbtrAgt>{debtor_agent}</DbtrAgt><ChrgBr>SLEV</ChrgBr>\n"
    )


def _transfer_xml(transfer: Transfer) -> str:
    end_to_end_id = transfer.end_to_end_id
    problem = _identifier_problem(end_to_end_id)
    if problem is not None:
        raise ValueError(f"end_to_end_id {problem}: {end_to_end_id!r}")
    amount = _amount_text(transfer.amount)
    if amount is None:
        problem = _amount_problem(transfer.amount)
        raise ValueError(f"transfer {end_to_end_id!r}: amount {problem}: {transfer.amount!r}")
    problem = _iban_problem(transfer.creditor_iban)
    if problem is not None:
        raise ValueError(
            f"transfer {end_to_end_id!r}: creditor IBAN: {problem}: {transfer.creditor_iban!r}"
        )
    name = escape(_text(transfer.creditor_name, MAX_NAME))
    if not name:
        raise ValueError(f"transfer {end_to_end_id!r}: creditor name is blank")
    remittance = escape(_text(transfer.remittance, MAX_REMITTANCE))
    open_remittance, close_remittance = REMITTANCE_TAGS if remittance else ("", "")
    return (
        f"<CdtTrfTxInf><PmtId><EndToEndId>{escape(end_to_end_id)}</EndToEndId></PmtId>"
        f'<Amt><InstdAmt Ccy="{CURRENCY}">{amount}</InstdAmt></Amt>'
        f"<CdtrAgt>{NOT_PROVIDED_AGENT}</CdtrAgt><Cdtr><Nm>{name}</Nm></Cdtr>"
        f"<CdtrAcct><Id><IBAN>{transfer.creditor_iban.replace(' ', '')}</IBAN></Id></CdtrAcct>"
        f"{open_remittance}{remittance}{close_remittance}</CdtTrfTxInf>\n"
    )


FOOTER = "</PmtInf></CstmrCdtTrfInitn></Document>\n"


def write_pain001(
    out: BinaryIO, header: BatchHeader, transfers: Iterable[Transfer]
) -> tuple[int, Decimal]:
    """Stream one pain.001.001.03 message (one PmtInf) to ``out``; return (count, total) written.

    Raises ValueError on a bad header or transfer, and when the transfers written do not match
    the header's ``transaction_count`` and ``control_sum``. On any error the closing tags are
    not written, so the output is not well-formed XML and must be discarded.
    """
    out.write(_header_xml(header).encode("utf-8"))
    count = 0
    total = Decimal("0.00")
    rows: list[str] = []
    for transfer in transfers:
        rows.append(_transfer_xml(transfer))
        count += 1
        if count > header.transaction_count:
            raise ValueError(
                f"header announces {header.transaction_count} transfers but more were given"
            )
        total += transfer.amount
        if len(rows) == FLUSH_ROWS:
            out.write("".join(rows).encode("utf-8"))
            rows.clear()
    out.write("".join(rows).encode("utf-8"))
    if count != header.transaction_count:
        raise ValueError(
            f"header announces {header.transaction_count} transfers but {count} were written"
        )
    if total != header.control_sum:
        raise ValueError(
            f"header announces a control sum of {header.control_sum} but the amounts total {total}"
        )
    out.write(FOOTER.encode("utf-8"))
    return count, total
