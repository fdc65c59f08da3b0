"""The doctor's pages (French, server-rendered, usable without JavaScript)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import segno
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from fse.crypto.access_codes import access_code
from fse.security.sessions import Session
from fse.web.deps import PageRefused, Posted, SignedIn, signing_key_of
from fse.web.errors import error_page
from fse.web.state import fhir_of, platform_key_of
from fse.web.templates import TEMPLATES
from prescriber.cancel import cancel_sheet
from prescriber.duplicates import CONFIRM_FIELD, DuplicateSheet, flagged
from prescriber.history import SheetView, load_sheet, sheets_of
from prescriber.idempotency import KeyReused, load_review, new_key, save_review, valid_key
from prescriber.lookup import (
    Insured,
    NotAnIdentifier,
    audit_read,
    find_insured,
    insured_by_id,
)
from prescriber.presettlement import presettle
from prescriber.sheets import SettlementFailed, SheetRefused, sign_sheet
from prescriber.visit import ACT_ROWS, LAB_ROWS, MEDICINE_ROWS, Visit, read_visit
from reimbursement.medicine_search import index_of
from reimbursement.state import books_of, settlement_of, today_of

KEY_FIELD = "cle"
"""The review form's idempotency key (hidden field)."""
REVIEW_EXPIRED = (
    "Cette relecture est incomplète ou trop ancienne : rien n'a été enregistré. Vérifiez la "
    "feuille ci-dessous puis signez à nouveau."
)
PATIENT_NOT_FOUND = "Patient introuvable : recherchez l'assuré à nouveau depuis l'espace médecin."
SHEET_NOT_FOUND = "Feuille introuvable : aucune de vos feuilles de soins ne porte ce numéro."
REVIEW_NOT_FOUND = "Relecture introuvable : saisissez la feuille à nouveau."
CONFIRM = "confirmer"
"""The field the confirmation step posts: without it, cancelling only asks."""
SETTLEMENT_FAILED = (
    "La feuille n'a pas été signée : le calcul du remboursement a échoué. Rien n'a été "
    "enregistré (ni feuille, ni prescription, ni remboursement). Réessayez dans quelques "
    "instants avec le bouton « Signer la feuille » ci-dessous : cette relecture ne signera "
    "jamais deux feuilles. Si l'échec se répète, notez l'heure et contactez l'assistance CNSS."
)

INLINE_SUGGESTIONS = 500
"""Up to this many reimbursable products, the form carries them all as suggestions (they work
without JavaScript); a longer list is suggested as the doctor types (``/medicaments``)."""

router = APIRouter(include_in_schema=False)


@router.get("/medecin", response_class=HTMLResponse)
async def home(request: Request, session: SignedIn) -> Response:
    sheets = await sheets_of(fhir_of(request), session.user.practitioner or "")
    today = today_of(request).isoformat()
    context = {
        "title": "Espace médecin",
        "session": session,
        "sheets": sheets,
        "today_count": sum(1 for row in sheets if row.signed_on.startswith(today)),
    }
    return TEMPLATES.TemplateResponse(request, "medecin_accueil.html", context)


@router.get("/medecin/assure", response_class=HTMLResponse)
async def insured(request: Request, session: SignedIn) -> Response:
    text = request.query_params.get("q", "")
    today = today_of(request)
    error, found = "", []
    try:
        found = await find_insured(
            fhir_of(request), books_of(request), text, today, _reader(session)
        )
    except NotAnIdentifier as problem:
        error = str(problem)
    if not error and not found:
        error = f"Aucun assuré avec l'identifiant {text.strip()}."
    return TEMPLATES.TemplateResponse(
        request,
        "medecin_assure.html",
        {
            "title": "Recherche d'un assuré",
            "session": session,
            "q": text,
            "error": error,
            "found": found,
            "today": today,
        },
        status_code=200 if found else (400 if error.startswith("Saisissez") else 404),
    )


def _form_context(
    request: Request,
    person: Insured,
    values: dict[str, str],
    errors: dict[str, str],
    chosen: dict[str, str] | None = None,
) -> dict[str, Any]:
    """``chosen``: per medicine or act field, what it names (shown under it)."""
    books = books_of(request)
    today = today_of(request)
    entries = index_of(books.medicines.in_force(today)).entries
    return {
        "title": "Feuille de soins",
        "person": person,
        "values": values,
        "errors": errors,
        "key_letters": books.tariffs.key_letters("cnss", today),
        "medicines": entries if len(entries) <= INLINE_SUGGESTIONS else [],
        "chosen": chosen or {},
        "analyses": sorted(books.biology.in_force(today).values(), key=lambda a: a.label),
        "act_rows": ACT_ROWS,
        "medicine_rows": MEDICINE_ROWS,
        "lab_rows": LAB_ROWS,
    }


def _reader(session: Session) -> str:
    """Who reads (audit) and reviews: the doctor's Practitioner, else their account."""
    return session.user.practitioner or f"user:{session.user.username}"


async def _person(
    request: Request, session: Session, patient_id: str, provider: str | None = None
) -> Insured | None:
    """``provider``: read with the insured (the review page settles against the doctor)."""
    return await insured_by_id(
        fhir_of(request),
        books_of(request),
        patient_id,
        today_of(request),
        _reader(session),
        provider,
    )


def _visit(request: Request, person: Insured, values: dict[str, str]) -> Visit:
    """The form read against today's tariffs, medicines list and nomenclature."""
    books = books_of(request)
    today = today_of(request)
    return read_visit(
        values,
        books.tariffs.key_letters("cnss", today),
        books.medicines.in_force(today),
        bool(person.exonerations),
        books.biology.in_force(today),
        books.ceilings.in_force(today),
        books.acts.in_force(today),
    )


def _no_sheet_after_death(person: Insured) -> str:
    """The form is not offered after a death (the insured's page says so); typing its address
    does not open it either."""
    return (
        f"{person.name}, {person.deceased} : "
        "aucune feuille de soins ne peut être établie à son nom."
    )


@router.get("/medecin/feuille", response_class=HTMLResponse)
async def new_sheet(request: Request, session: SignedIn) -> Response:
    person = await _person(request, session, request.query_params.get("patient", ""))
    if person is None:
        return await error_page(request, 404, PATIENT_NOT_FOUND)
    if person.deceased:
        return await error_page(request, 409, _no_sheet_after_death(person))
    context = {"session": session, **_form_context(request, person, {}, {})}
    return TEMPLATES.TemplateResponse(request, "medecin_feuille.html", context)


@router.post("/medecin/feuille", response_class=HTMLResponse)
async def sheet_action(request: Request, session: SignedIn, values: Posted) -> Response:
    person = await _person(request, session, values.get("patient", ""))
    if person is None:
        return await error_page(request, 404, PATIENT_NOT_FOUND)
    if person.deceased:
        return await error_page(request, 409, _no_sheet_after_death(person))
    visit = _visit(request, person, values)
    context = {
        "session": session,
        **_form_context(request, person, values, visit.errors, visit.chosen),
    }
    action = values.get("action")
    if not visit.ok or action == "modifier":
        status = 422 if visit.errors and action != "modifier" else 200
        return TEMPLATES.TemplateResponse(
            request, "medecin_feuille.html", context, status_code=status
        )
    if action != "signer":  # review: stored, then shown by a GET that Back comes to again
        reviewed = {k: v for k, v in values.items() if k not in ("csrf", "action", KEY_FIELD)}
        key = await save_review(
            fhir_of(request),
            _reader(session),
            person.patient_id,
            reviewed,
            datetime.now(UTC),
        )
        return RedirectResponse(f"/medecin/relecture/{key}", status_code=303)
    key = signing_key_of(request, session)
    if key is None or session.user.practitioner is None:
        context["errors"] = {
            "feuille": "Votre clé de signature n'est pas ouverte : reconnectez-vous."
        }
        return TEMPLATES.TemplateResponse(request, "medecin_feuille.html", context, status_code=409)
    form_key = values.get(KEY_FIELD, "")
    if not valid_key(form_key):
        return await _review(request, context, person, visit, new_key(), REVIEW_EXPIRED, 422)
    settlement = settlement_of(request)
    try:
        sheet = await sign_sheet(
            fhir_of(request),
            settlement,
            settlement.books,
            session.user.practitioner,
            key,
            person.patient_id,
            visit,
            datetime.now(UTC),
            form_key,
            duplicate_confirmed=values.get(CONFIRM_FIELD) == "on",
        )
    except SheetRefused as refused:
        context["errors"] = {"feuille": str(refused)}
        return TEMPLATES.TemplateResponse(request, "medecin_feuille.html", context, status_code=422)
    except KeyReused as reused:  # what is posted is not what this key's review showed
        return await _review(request, context, person, visit, new_key(), str(reused), 409)
    except DuplicateSheet as duplicate:  # nothing stored: the same key may sign once confirmed
        return await _review(request, context, person, visit, form_key, str(duplicate), 409)
    except SettlementFailed:  # nothing stored: the same key may sign on a retry
        return await _review(request, context, person, visit, form_key, SETTLEMENT_FAILED, 503)
    return RedirectResponse(f"/medecin/feuille/{sheet.number}", status_code=303)


@router.get("/medecin/relecture/{key}", response_class=HTMLResponse)
async def review_page(request: Request, key: str, session: SignedIn) -> Response:
    """The stored review, as often as the browser asks (Back after signing comes here)."""
    found = await load_review(fhir_of(request), _reader(session), key, datetime.now(UTC))
    doctor = session.user.practitioner
    person = await _person(request, session, found[0], doctor) if found else None
    if found is None or person is None:
        return await error_page(request, 404, REVIEW_NOT_FOUND)
    _, values, signed = found
    visit = _visit(request, person, values)
    context = {
        "session": session,
        **_form_context(request, person, values, visit.errors, visit.chosen),
    }
    return await _review(request, context, person, visit, key, signed_as=signed)


async def _review(
    request: Request,
    context: dict[str, Any],
    person: Insured,
    visit: Visit,
    form_key: str,
    error: str = "",
    status_code: int = 200,
    signed_as: str | None = None,
) -> Response:
    """The review page: signed with ``form_key`` (new at each review, kept when nothing was
    stored), naming the doctor's sheets of today with the same lines, and the sheet this very
    review already signed (``signed_as``: signing again shows it)."""
    practitioner = context["session"].user.practitioner
    duplicates = (
        await flagged(fhir_of(request), practitioner, person.patient_id, today_of(request), visit)
        if practitioner
        else []
    )
    presettlement = (
        await presettle(
            fhir_of(request),
            settlement_of(request),
            practitioner,
            person.patient_id,
            visit,
            datetime.now(UTC),
            person.record,
        )
        if practitioner and signed_as is None  # once signed, the signed sheet tells
        else None
    )
    review = {
        **context,
        "visit": visit,
        "presettlement": presettlement,
        "form_key": form_key,
        "key_field": KEY_FIELD,
        "confirm_field": CONFIRM_FIELD,
        "duplicates": [number for number in duplicates if number != signed_as],
        "signed_as": signed_as,
        "error": error,
    }
    return TEMPLATES.TemplateResponse(
        request, "medecin_relire.html", review, status_code=status_code
    )


async def own_sheet(request: Request, number: str, session: SignedIn) -> SheetView:
    """The doctor's own sheet ``number``, its reading audited; another doctor's sheet does not
    exist for this one (a French 404)."""
    fhir = fhir_of(request)
    view = await load_sheet(fhir, number)
    if view is None or view.author != session.user.practitioner:
        raise PageRefused(await error_page(request, 404, SHEET_NOT_FOUND))
    await audit_read(fhir, view.author, [view.patient["id"]], f"feuille {number}")
    return view


OwnSheet = Annotated[SheetView, Depends(own_sheet)]


@router.get("/medecin/feuille/{number}", response_class=HTMLResponse)
async def signed_sheet(
    request: Request, number: str, session: SignedIn, view: OwnSheet
) -> Response:
    context = {"title": f"Feuille {number}", "session": session, "sheet": view}
    return TEMPLATES.TemplateResponse(request, "medecin_resultat.html", context)


@router.get("/medecin/feuille/{number}/copie", response_class=HTMLResponse)
async def patient_copy(
    request: Request, number: str, session: SignedIn, view: OwnSheet
) -> Response:
    qr = segno.make(number, error="m").svg_inline(scale=4, title=f"Feuille {number}")
    context = {
        "title": f"Copie patient {number}",
        "session": session,
        "sheet": view,
        "qr": qr,
        # A cancelled sheet opens nothing at the pharmacy: its copy carries no access code.
        "access_code": None if view.cancelled else access_code(platform_key_of(request), number),
    }
    return TEMPLATES.TemplateResponse(request, "medecin_copie.html", context)


@router.post("/medecin/feuille/{number}/annuler", response_class=HTMLResponse)
async def cancel(
    request: Request, number: str, session: SignedIn, posted: Posted, view: OwnSheet
) -> Response:
    context = {"title": f"Feuille {number}", "session": session, "sheet": view}
    if view.cancelled:
        context["error"] = "Cette feuille est déjà annulée."
        return TEMPLATES.TemplateResponse(
            request, "medecin_resultat.html", context, status_code=409
        )
    if posted.get(CONFIRM) != "oui":  # the first press only asks, saying what will happen
        context["title"] = f"Annuler la feuille {number} ?"
        return TEMPLATES.TemplateResponse(request, "medecin_annuler.html", context)
    try:
        await cancel_sheet(fhir_of(request), view, view.author, datetime.now(UTC))
    except SheetRefused as refused:
        context["error"] = str(refused)
        return TEMPLATES.TemplateResponse(
            request, "medecin_resultat.html", context, status_code=409
        )
    return RedirectResponse(f"/medecin/feuille/{number}", status_code=303)
