"""AMO identifier rules: format and check characters of each identifier, as small pure functions.

Each ``*_problem`` function returns None for a valid value, or a French message saying what is
wrong (shown to doctors and pharmacists as is). Sources: ../shared/reference/amo-rules.md §4.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterable

IMMATRICULATION_RE = re.compile(r"^\d{9}$")
CIN_RE = re.compile(r"^[A-Z]{1,2}\d{1,6}$")
INPE_RE = re.compile(r"^\d{9}$")
EAN13_RE = re.compile(r"^\d{13}$")
RIB_RE = re.compile(r"^\d{24}$")
IBAN_MA_RE = re.compile(r"^MA\d{26}$")
CARE_SHEET_RE = re.compile(r"^FSE-(?P<year>\d{4})-(?P<sequence>\d{9})-(?P<check>\d{2})$")
DISPENSE_NUMBER_RE = re.compile(r"^DEL-(?P<year>\d{4})-(?P<sequence>\d{9})-(?P<check>\d{2})$")
"""A pharmacy dispense (pharmacy/numbers.py): its claim has the same year and sequence."""


def immatriculation_problem(value: str) -> str | None:
    """CNSS registration number: 9 digits (no check digit is documented)."""
    if IMMATRICULATION_RE.match(value):
        return None
    return "le numéro d'immatriculation compte 9 chiffres"


def cin_problem(value: str) -> str | None:
    """CIN / CNIE: 1 or 2 letters (issuing office) then 1 to 6 digits, e.g. BE123456."""
    if CIN_RE.match(value):
        return None
    return "la CIN s'écrit avec 1 ou 2 lettres majuscules suivies de 1 à 6 chiffres (ex. BE123456)"


def normalized_cin(value: str) -> str:
    """The form a CIN is compared in: capitals, no spaces ('be 123456' is BE123456)."""
    return "".join(value.split()).upper()


def masked_cin(value: str) -> str:
    """A CIN fit for a log or an audit sentence: office letters and last two digits (BE****56)."""
    cin = normalized_cin(value)
    letters = len(cin) - len(cin.lstrip(string.ascii_uppercase))
    digits = cin[letters:]
    kept = digits[-2:] if len(digits) > 2 else ""
    return cin[:letters] + "*" * (len(digits) - len(kept)) + kept


def inpe_problem(value: str) -> str | None:
    """INPE (ANAM's number for professionals and establishments): 9 digits."""
    if INPE_RE.match(value):
        return None
    return "l'INPE compte 9 chiffres"


def ean13_check_digit(first_twelve: str) -> int:
    """GS1 mod-10: weights 1 and 3 from the left over the first 12 digits."""
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(first_twelve))
    return (10 - total % 10) % 10


_published_ean13: frozenset[str] = frozenset()


def accept_published_ean13(codes: Iterable[str]) -> None:
    """Codes an official medicines list publishes with a wrong check digit (19 in the CNOPS
    list): they are the codes on those boxes, so they are accepted as published, while any other
    code, typed by a person, is still checked. The app sets them from the lists it loads."""
    global _published_ean13
    _published_ean13 = frozenset(codes)


def ean13_key_ok(value: str) -> bool:
    return ean13_check_digit(value[:12]) == int(value[12])


def ean13_problem(value: str) -> str | None:
    """Medicine code: EAN-13 (Morocco's GS1 prefix is 611) with its check digit."""
    if not EAN13_RE.match(value):
        return "le code EAN-13 compte 13 chiffres"
    if not ean13_key_ok(value) and value not in _published_ean13:
        return "le chiffre de contrôle du code EAN-13 est faux"
    return None


def rib_key(base22: str) -> str:
    """The 2-digit key that makes the 24-digit RIB divisible by 97."""
    return f"{97 - int(base22) * 100 % 97:02d}"


def rib_problem(value: str) -> str | None:
    """RIB: bank (3) + locality (3) + account (16) + key (2); the whole number ≡ 0 (mod 97)."""
    if not RIB_RE.match(value):
        return "le RIB compte 24 chiffres"
    if int(value) % 97 != 0:
        return "la clé du RIB est fausse"
    return None


def _iso7064_number(text: str) -> int:
    """Letters as numbers (A=10 ... Z=35), as ISO 13616 (IBAN) and ISO 7064 MOD 97-10 use them."""
    return int("".join(str(int(c, 36)) if c in string.ascii_uppercase else c for c in text))


def iso7064_mod97_10(text: str) -> str:
    """The two check characters of ISO 7064 MOD 97-10 for ``text`` (digits and capitals)."""
    return f"{98 - _iso7064_number(text + '00') % 97:02d}"


def iso7064_mod97_10_valid(text_with_check: str) -> bool:
    return _iso7064_number(text_with_check) % 97 == 1


def iban_from_rib(rib: str) -> str:
    """Moroccan IBAN: MA + 2 check digits + the 24-digit RIB (28 characters)."""
    return f"MA{iso7064_mod97_10(rib + 'MA')}{rib}"


def iban_problem(value: str) -> str | None:
    """IBAN MA: ISO 13616 check (rearranged number mod 97 == 1), and the RIB inside it valid."""
    compact = value.replace(" ", "")
    if not IBAN_MA_RE.match(compact):
        return "l'IBAN marocain s'écrit MA suivi de 26 chiffres"
    if not iso7064_mod97_10_valid(compact[4:] + compact[:4]):
        return "les chiffres de contrôle de l'IBAN sont faux"
    return rib_problem(compact[4:])


def care_sheet_number(year: int, sequence: int) -> str:
    """Care-sheet (FSE) number: FSE-YYYY-NNNNNNNNN-CC, CC = ISO 7064 MOD 97-10 over the rest."""
    body = f"FSE{year:04d}{sequence:09d}"
    return f"FSE-{year:04d}-{sequence:09d}-{iso7064_mod97_10(body)}"


def care_sheet_number_problem(value: str) -> str | None:
    match = CARE_SHEET_RE.match(value)
    if not match:
        return "le numéro de feuille de soins s'écrit FSE-AAAA-NNNNNNNNN-CC"
    body = f"FSE{match['year']}{match['sequence']}{match['check']}"
    if not iso7064_mod97_10_valid(body):
        return "les caractères de contrôle du numéro de feuille de soins sont faux"
    return None


RULES: dict[str, Callable[[str], str | None]] = {
    "immatriculation": immatriculation_problem,
    "cin": cin_problem,
    "inpe": inpe_problem,
    "ean13": ean13_problem,
    "rib": rib_problem,
    "iban-ma": iban_problem,
    "care-sheet-number": care_sheet_number_problem,
}
"""Rule names as NamingSystems reference them (extension ``identifier-rule``)."""
