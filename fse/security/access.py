"""Who may do what, through every door: the one access model, kept as data.

Doors:

- ``system``: a CNSS system's bearer token (OAuth2 client credentials). Its SMART scopes
  decide, per resource type and interaction letter (``fse.security.scopes``).
- ``session``: a signed-in person on ``/fhir`` (cookie + ``X-CSRF-Token``), and later practice
  or pharmacy software acting with a person's token. Their role's cell below decides, per type
  and letter, narrowed by a rule (``own``: resources naming them; ``looked-up``: insured they
  looked up; ``identified``: searches must name the insured).
- ``page``: the web screens. Each section of pages opens to the roles listed in ``PAGES``.

Letters are SMART's: c create, r read (read, vread, history of an instance), u update, d delete,
s search (and type history). An operation needs the letter it declares (``$submit`` c on Claim,
``$review`` u on ClaimResponse, ``$validate`` r). Whatever a cell does not grant is refused.
Types in ``RESERVED`` are never written through REST for the letters listed, whoever asks: their
own flows (signing, dispensing, settling, cancelling) write them.

``docs/security.md`` shows this table (``fse access table`` prints it); tests/fse/security/
test_access_matrix.py generates one test per cell of it, so a new type or role is covered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from fse.security.scopes import Grant
from fse.security.users import ROLE_LABELS, Role
from fse.store.search_params import SEARCH_PARAMS, SUPPORTED_TYPES, search_param

LETTERS = "cruds"
INTERACTION_LETTER = {
    "read": "r",
    "vread": "r",
    "history-instance": "r",
    "search-type": "s",
    "history-type": "s",
    "create": "c",
    "update": "u",
    "delete": "d",
}
"""The letter each FHIR interaction needs (operations declare theirs)."""


class Rule(StrEnum):
    ALL = "all"
    """Every resource of the type."""
    IDENTIFIED = "identified"
    """Any one resource, but a search must name the insured (identifier, id or reference to the
    Patient): professionals find an insured, they do not browse the registry."""
    OWN = "own"
    """Resources that name the caller (their Practitioner, or the organisation of their
    PractitionerRole: the pharmacy, the lab) in the type's owner parameter."""
    LOOKED_UP = "looked-up"
    """Resources of an insured the caller looked up by identifier (at the counter, on their
    screen or through the API) within ``LOOKUP_VALIDITY``."""


NARROWED = frozenset({Rule.OWN, Rule.LOOKED_UP})
"""Rules that filter resources (searches get the rule's criterion; each resource is checked)."""

LOOKUP_VALIDITY = timedelta(hours=12)
"""How long looking an insured up opens their prescriptions: a working day at the counter."""

OWNER: dict[str, str] = {
    "Encounter": "participant",
    "ChargeItem": "performer-actor",
    "MedicationRequest": "requester",
    "ServiceRequest": "requester",
    "MedicationDispense": "performer",
    "Claim": "provider",
    "ClaimResponse": "requestor",
    "ExplanationOfBenefit": "provider",
    "CoverageEligibilityRequest": "provider",
    "CoverageEligibilityResponse": "request.provider",
    "Provenance": "agent",
}
"""The search parameter naming whose a resource is (``own``), unless a cell names another."""

INSURED = "patient"
"""The search parameter naming the insured (``looked-up``); every type it applies to has it."""

_ = "-"
ROLE_ORDER = (Role.PRESCRIBER, Role.PHARMACIST, Role.LAB, Role.CNSS_AGENT)
CELLS: dict[str, tuple[str, str, str, str]] = {
    # type                         prescriber          pharmacist         lab               CNSS
    "Patient": ("rs:identified", "rs:identified", "rs:identified", "rs"),
    "Coverage": ("rs:identified", "rs:identified", "rs:identified", "rs"),
    "Condition": ("rs:identified", _, _, "rs"),
    "Practitioner": ("rs", "rs", "rs", "rs"),
    "PractitionerRole": ("rs", "rs", "rs", "rs"),
    "Organization": ("rs", "rs", "rs", "rs"),
    "CoverageEligibilityRequest": ("crs:own", "crs:own", "crs:own", "rs"),
    "CoverageEligibilityResponse": ("rs:own", "rs:own", "rs:own", "rs"),
    "Encounter": ("crs:own", _, _, "rs"),
    "ChargeItem": ("crs:own", _, "crs:own", "rs"),
    "MedicationRequest": ("crs:own", "rs:looked-up", _, "rs"),
    "ServiceRequest": ("crs:own", _, "rs:looked-up", "rs"),
    "MedicationDispense": ("rs:own(prescription.requester)", "rs:own", _, "rs"),
    "Claim": ("crs:own", "crs:own", "crs:own", "rs"),
    "ClaimResponse": ("rs:own", "rs:own", "rs:own", "rsu"),
    "ExplanationOfBenefit": (_, _, _, "rs"),
    "PaymentReconciliation": (_, _, _, "rs"),
    "Provenance": ("rs:own", "rs:own", "rs:own", "rs"),
    "AuditEvent": (_, _, _, "rs"),
    "StructureDefinition": (_, _, _, "rs"),
    "CodeSystem": (_, _, _, "rs"),
    "ValueSet": (_, _, _, "rs"),
    "NamingSystem": (_, _, _, "rs"),
}
"""Per type, what each role may do through the FHIR API: ``letters[:rule[(parameter)]]``,
space-separated; ``-`` nothing. A prescriber's ``c:own`` Claim is also their ``$submit``, which
further needs their signature (``fse.fhir_api.guard``); the CNSS agent's ``u`` on ClaimResponse
is ``$review`` (REST updates of it are reserved)."""

_CARE_SHEET = (
    "a signed care sheet changes only through its own flows (the doctor's cancellation, "
    "a dispense, the settlement): no REST update or delete"
)
_SETTLEMENT = "the reimbursement engine writes it when it settles or reviews a claim"
RESERVED: dict[str, tuple[str, str]] = {
    "Encounter": ("ud", _CARE_SHEET),
    "ChargeItem": ("ud", _CARE_SHEET),
    "MedicationRequest": ("ud", _CARE_SHEET),
    "ServiceRequest": ("ud", _CARE_SHEET),
    "Claim": ("ud", _CARE_SHEET),
    "Provenance": ("ud", "a signature is never altered or withdrawn"),
    "MedicationDispense": (
        "cud",
        "a pharmacist dispenses on the pharmacy screen (/pharmacie), where each line is "
        "dispensed once, signed and settled in one transaction",
    ),
    "ClaimResponse": ("cud", _SETTLEMENT),
    "ExplanationOfBenefit": ("cud", _SETTLEMENT),
    "PaymentReconciliation": ("cud", "payment batches write it (fse pay, at each cut-off)"),
    "AuditEvent": ("cud", "the platform writes the audit trail itself; it is append-only"),
}
"""Types (and letters) no one writes through REST, with how they are written instead."""

PUBLIC = "public"
SIGNED_IN = "signed-in"
PAGES: dict[str, tuple[str, ...]] = {
    "/": (PUBLIC,),
    "/docs": (PUBLIC,),
    "/openapi.json": (PUBLIC,),
    "/static": (PUBLIC,),
    "/favicon.ico": (PUBLIC,),
    "/a-propos": (PUBLIC,),
    "/connexion": (PUBLIC,),
    "/deconnexion": (PUBLIC,),
    "/auth/token": (PUBLIC,),
    "/.well-known": (PUBLIC,),
    "/health": (PUBLIC,),
    "/ready": (PUBLIC,),
    "/espace": (SIGNED_IN,),
    "/espace/mot-de-passe": (SIGNED_IN,),
    "/medecin": (Role.PRESCRIBER,),
    "/pharmacie": (Role.PHARMACIST,),
    "/cnss": (Role.CNSS_AGENT,),
    "/cnss/feuilles": (Role.CNSS_AGENT,),
    "/medicaments": (Role.PRESCRIBER, Role.PHARMACIST),
    "/actes": (Role.PRESCRIBER,),
}
"""Each section of the web screens (a path and what is below it) and who opens it. The
logout form is public: without a session it just goes back to the login page. ``/health`` and
``/ready`` are for load balancers: they name no data (``fse/health.py``). ``/medicaments``
suggests reimbursable products to those who prescribe or dispense them, ``/actes`` the NGAP
acts to doctors (neither names an insured). ``/espace/mot-de-passe``: every signed-in person
changes their own password (a system client has no session, so no page)."""


@dataclass(frozen=True)
class Permission:
    rule: Rule
    via: str | None = None
    """The search parameter the rule looks at (owner or insured), for narrowed rules."""


Cell = dict[str, Permission]
"""Letter -> how it is narrowed."""

_CELL_RE = re.compile(r"^(?P<letters>[cruds]+)(?::(?P<rule>[a-z-]+)(?:\((?P<via>[a-z.-]+)\))?)?$")


def parse_cell(rtype: str, text: str) -> Cell:
    """``crs:own rs:own(prescription.requester)`` -> {letter: Permission}; raises on typos."""
    cell: Cell = {}
    for token in text.split() if text != _ else ():
        match = _CELL_RE.match(token)
        if match is None:
            raise ValueError(f"{rtype}: bad access cell {token!r}")
        rule = Rule(match["rule"] or Rule.ALL)
        via = match["via"] or (
            OWNER.get(rtype) if rule is Rule.OWN else INSURED if rule is Rule.LOOKED_UP else None
        )
        if rule in NARROWED and (via is None or _param(rtype, via) is None):
            raise ValueError(f"{rtype}: rule {rule} needs a search parameter, not {via!r}")
        for letter in match["letters"]:
            if letter in cell:
                raise ValueError(f"{rtype}: letter {letter} given twice")
            cell[letter] = Permission(rule, via if rule in NARROWED else None)
    return cell


def _param(rtype: str, name: str) -> object | None:
    """A parameter of the type, or a one-level chain (``prescription.requester``)."""
    head, _, tail = name.partition(".")
    param = search_param(rtype, head)
    if param is None or not tail:
        return param
    return next((search_param(t, tail) for t in param.targets if search_param(t, tail)), None)


ROLE_CELLS: dict[Role, dict[str, Cell]] = {
    role: {rtype: parse_cell(rtype, cells[i]) for rtype, cells in CELLS.items()}
    for i, role in enumerate(ROLE_ORDER)
}


LOOKING_UP: frozenset[Role] = frozenset(
    role
    for role, cells in ROLE_CELLS.items()
    if any(perm.rule is Rule.LOOKED_UP for cell in cells.values() for perm in cell.values())
)
"""Roles with a ``looked-up`` cell: their identifier searches of Patient open those insured."""

SYSTEM_ONLY: dict[str, str] = {
    "$export": "bulk export is for CNSS system clients (OAuth2 client credentials with read "
    "scopes), not for a person's session",
    "Subscription": "subscriptions are created by CNSS system clients (OAuth2 client "
    "credentials), not by a person's session",
}
"""Doors of the FHIR API no person's session opens, whatever their role."""


def permission(role: Role, rtype: str, letter: str) -> Permission | None:
    """How ``role`` may use ``letter`` on ``rtype`` through the FHIR API; None: refused."""
    return ROLE_CELLS[role].get(rtype, {}).get(letter)


def role_grants(role: Role) -> tuple[Grant, ...]:
    """The role's letters per type as grants (what the scope-based checks see of a person)."""
    return tuple(Grant(rtype, frozenset(cell)) for rtype, cell in ROLE_CELLS[role].items() if cell)


def role_scopes(role: Role) -> str:
    """The role's letters as SMART system scopes, unnarrowed (a system client acting for the
    role's systems, e.g. a CNSS agents' back office)."""
    return " ".join(
        f"system/{g.resource_type}.{''.join(c for c in LETTERS if c in g.permissions)}"
        for g in role_grants(role)
    )


def reserved(rtype: str, letter: str) -> str | None:
    """Why ``letter`` on ``rtype`` is never done through REST (None: it may be)."""
    letters, how = RESERVED.get(rtype, ("", ""))
    return how if letter in letters else None


def page_roles(path: str) -> tuple[str, ...] | None:
    """Who opens the page at ``path`` (its longest listed section); None: not in the model."""
    best = None
    for section in PAGES:
        hit = path == section or (section != "/" and path.startswith(section + "/"))
        if hit and (best is None or len(section) > len(best)):
            best = section
    return PAGES[best] if best is not None else None


def page_allows(path: str, role: Role | None) -> bool:
    """Whether someone of ``role`` (None: not signed in) may open the page at ``path``."""
    roles = page_roles(path) or ()
    return PUBLIC in roles or (role is not None and (SIGNED_IN in roles or role in roles))


def markdown_table() -> str:
    """The model as the tables docs/security.md shows (generated, never written by hand)."""
    head = "| type | " + " | ".join(ROLE_LABELS[r] for r in ROLE_ORDER) + " | REST writes |"
    lines = [head, "|---" * (len(ROLE_ORDER) + 2) + "|"]
    for rtype in SUPPORTED_TYPES:
        cells = [_describe(ROLE_CELLS[role][rtype]) for role in ROLE_ORDER]
        letters, _how = RESERVED.get(rtype, ("", ""))
        writes = "never: " + "/".join(_WRITE_NAMES[c] for c in letters) if letters else "per grant"
        lines.append(f"| {rtype} | " + " | ".join(cells) + f" | {writes} |")
    lines += ["", "| system clients only | why |", "|---|---|"]
    lines += [f"| `{door}` | {why} |" for door, why in SYSTEM_ONLY.items()]
    lines += ["", "| section of the screens | who opens it |", "|---|---|"]
    for section, roles in PAGES.items():
        lines.append(f"| `{section}` | {', '.join(_who(r) for r in roles)} |")
    return "\n".join(lines) + "\n"


_WRITE_NAMES = {"c": "create", "u": "update", "d": "delete"}
_RULE_WORDS = {
    Rule.ALL: "",
    Rule.IDENTIFIED: " (search naming the insured)",
    Rule.OWN: " own",
    Rule.LOOKED_UP: " insured looked up",
}


def _describe(cell: Cell) -> str:
    if not cell:
        return "-"
    groups: dict[Permission, str] = {}
    for letter in LETTERS:
        if letter in cell:
            groups[cell[letter]] = groups.get(cell[letter], "") + letter
    parts = []
    for perm, letters in groups.items():
        via = f" (`{perm.via}`)" if perm.rule is Rule.OWN and perm.via else ""
        parts.append(f"{letters}{_RULE_WORDS[perm.rule]}{via}")
    return ", ".join(parts)


def _who(role: str) -> str:
    if role == PUBLIC:
        return "everyone"
    if role == SIGNED_IN:
        return "any signed-in person"
    return ROLE_LABELS[Role(role)]


def check_model() -> None:
    """Every served type has a row, every owner parameter exists (run by the tests)."""
    missing = set(SUPPORTED_TYPES) ^ set(CELLS)
    if missing:
        raise ValueError(f"access model rows missing or unknown: {sorted(missing)}")
    for rtype, param in OWNER.items():
        if rtype not in SEARCH_PARAMS or _param(rtype, param) is None:
            raise ValueError(f"{rtype}: owner parameter {param!r} is not searchable")
