"""The pharmacist's pages (French, server-rendered, usable without JavaScript): find the insured,
see their open lines, dispense, see what the insured pays, print the receipt, reverse."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from fse.crypto.access_codes import code_matches
from fse.errors import FhirError
from fse.security.sessions import Session
from fse.web.deps import PageRefused, Posted, SignedIn, signing_key_of
from fse.web.errors import error_page
from fse.web.state import fhir_of, platform_key_of, runtime_of, settings_of
from fse.web.templates import TEMPLATES
from pharmacy.dispense import DispenseConflict, DispenseHeld, DispenseRefused, dispense
from pharmacy.form import read_order, substitutes
from pharmacy.lookup import NotAnIdentifier, OpenLine, earlier_dispenses, open_lines
from pharmacy.pharmacist import Pharmacist, pharmacist_of
from pharmacy.preview import DispensePreview, preview_dispense, preview_of
from pharmacy.receipt import DispenseView, load_dispense, todays_dispenses
from pharmacy.reversal import reverse_dispense
from reimbursement.medicine_search import label_of
from reimbursement.state import books_of, settlement_of, today_of

router = APIRouter(include_in_schema=False)
LOOKUP_WINDOW_SECONDS = 3600
DISPENSE_NOT_FOUND = (
    "Délivrance introuvable : aucune délivrance de votre pharmacie ne porte ce numéro."
)
CONFIRM = "confirmer"
"""The field the confirmation step posts: without it, reversing only asks."""
VERIFY = "verifier"
"""The dispensing form's "Vérifier les montants" (action): the preview, nothing written."""
PREVIEWED = "apercu"
"""Hidden field: the fingerprint of the order whose preview the pharmacist has seen."""
HELD_FIRST = (
    "Rien n'a été délivré : la CNSS retiendra cette délivrance pour contrôle (voir ci-dessous). "
    "Vérifiez avec l'assuré, puis appuyez à nouveau sur « Délivrer » pour la confirmer."
)


async def at_counter(request: Request, session: SignedIn) -> Pharmacist:
    """The signed-in pharmacist and their pharmacy; an account with no pharmacy is refused (a
    French 403 naming why)."""
    pharmacist = await pharmacist_of(fhir_of(request), session.user.practitioner)
    if pharmacist is None:
        raise PageRefused(
            TEMPLATES.TemplateResponse(
                request,
                "forbidden.html",
                {
                    "title": "Compte sans pharmacie",
                    "session": session,
                    "reason": "Votre compte n'est rattaché à aucune pharmacie (rôle de "
                    "pharmacien dans une officine) : contactez la CNSS.",
                },
                status_code=403,
            )
        )
    return pharmacist


AtCounter = Annotated[Pharmacist, Depends(at_counter)]
"""The pharmacist a page serves (after the access check of ``SignedIn``)."""


def _page(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> Response:
    return TEMPLATES.TemplateResponse(request, name, context, status_code=status_code)


@router.get("/pharmacie", response_class=HTMLResponse)
async def home(request: Request, session: SignedIn, pharmacist: AtCounter) -> Response:
    zone = settlement_of(request).schedule.zone
    context = {
        "title": "Espace pharmacie",
        "session": session,
        "pharmacist": pharmacist,
        "code_required": settings_of(request).pharmacy_access_code,
        "dispenses": await todays_dispenses(fhir_of(request), pharmacist.pharmacy, zone),
    }
    return _page(request, "pharmacie_accueil.html", context)


async def _lines_page(
    request: Request,
    session: Session,
    pharmacist: Pharmacist,
    text: str,
    code: str,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
    preview: DispensePreview | None = None,
) -> Response:
    settings = settings_of(request)
    key = platform_key_of(request)
    shown = None
    if settings.pharmacy_access_code:

        def shown(line: OpenLine) -> bool:
            return code_matches(key, line.sheet, code)

    error, lines = "", []
    try:
        lines = await open_lines(
            fhir_of(request),
            text,
            today_of(request),
            pharmacist.practitioner,
            pharmacist.pharmacy,
            shown,
            session.user.pk,
        )
    except NotAnIdentifier as problem:
        error = str(problem)
    if not error and not lines:
        error = (
            "Aucune ligne à délivrer pour cet identifiant et ce code d'accès."
            if settings.pharmacy_access_code
            else f"Aucune ligne à délivrer pour {text.strip()}."
        )
        status_code = 404 if status_code == 200 else status_code
    elif error:
        status_code = 400
    errors = dict(errors or {})
    shown_ids = {line.request_id for line in lines}
    for name in [n for n in errors if n.startswith("ligne-")]:
        if name.removeprefix("ligne-") not in shown_ids:  # the line is gone (dispensed)
            errors["delivrance"] = errors.pop(name)
    return await _render_lines(
        request,
        session,
        pharmacist,
        text,
        code,
        lines,
        error,
        values or {},
        errors,
        status_code,
        preview,
    )


async def _render_lines(
    request: Request,
    session: Session,
    pharmacist: Pharmacist,
    text: str,
    code: str,
    lines: list[OpenLine],
    error: str,
    values: dict[str, str],
    errors: dict[str, str],
    status_code: int,
    preview: DispensePreview | None = None,
) -> Response:
    books = books_of(request)
    today = today_of(request)
    patients: dict[str, list[OpenLine]] = {}
    for line in lines:
        patients.setdefault(line.patient_id, []).append(line)
    sheets = [line.sheet for line in lines if line.sheet]
    earlier = await earlier_dispenses(fhir_of(request), sheets) if sheets else {}
    context = {
        "title": "Lignes à délivrer",
        "session": session,
        "pharmacist": pharmacist,
        "q": text,
        "code": code,
        "code_required": settings_of(request).pharmacy_access_code,
        "error": error,
        "patients": patients,
        "products": {line.request_id: substitutes(books, line, today) for line in lines},
        "named": partial(label_of, medicines=books.medicines.in_force(today)),
        "earlier": earlier,
        "values": values,
        "errors": errors,
        "idempotency_key": values.get("cle") or uuid.uuid4().hex,
        "preview": preview,
    }
    return _page(request, "pharmacie_lignes.html", context, status_code)


@router.get("/pharmacie/recherche", response_class=HTMLResponse)
async def search(request: Request, session: SignedIn, pharmacist: AtCounter) -> Response:
    limit = settings_of(request).pharmacy_lookups_per_hour
    if limit:
        decision = await runtime_of(request).limiter.hit(
            f"pharmacy-lookup:{session.user.username}", limit, LOOKUP_WINDOW_SECONDS
        )
        if not decision.allowed:
            minutes = max(1, decision.retry_after // 60)
            error = f"Trop de recherches d'assurés : réessayez dans {minutes} minute(s)."
            return await _render_lines(request, session, pharmacist, "", "", [], error, {}, {}, 429)
    query = request.query_params
    return await _lines_page(
        request, session, pharmacist, query.get("q", ""), query.get("code", "")
    )


@router.post("/pharmacie/delivrer", response_class=HTMLResponse)
async def dispense_lines(
    request: Request, session: SignedIn, pharmacist: AtCounter, values: Posted
) -> Response:
    settlement = settlement_of(request)

    async def again(
        errors: dict[str, str], status_code: int, preview: DispensePreview | None = None
    ) -> Response:
        """The lines as they are now, the input kept, each error beside its line."""
        query, code = values.get("q", ""), values.get("code", "")
        return await _lines_page(
            request, session, pharmacist, query, code, values, errors, status_code, preview
        )

    checking = values.get("action") == VERIFY
    key = signing_key_of(request, session)
    if key is None and not checking:
        return await again(
            {"delivrance": "Votre clé de signature n'est pas ouverte : reconnectez-vous."}, 409
        )
    order, errors = read_order(values, settlement.books, today_of(request))
    if order is None:
        return await again(errors, 422)
    if checking:  # what the settlement will decide, before anything is written
        try:
            preview = await preview_dispense(
                fhir_of(request), settlement, pharmacist, order, datetime.now(UTC)
            )
        except DispenseRefused as refused:
            status = 409 if isinstance(refused, DispenseConflict) else 422
            return await again({refused.field or "delivrance": str(refused)}, status)
        except FhirError as refused:
            return await again({"delivrance": refused.diagnostics}, 422)
        return await again({}, 200, preview)
    assert key is not None
    # Nothing is stored on a refusal, so the same key may serve the corrected request.
    idempotency_key = request.headers.get("Idempotency-Key") or values.get("cle", "")
    try:
        done = await dispense(
            fhir_of(request),
            settlement,
            pharmacist,
            key,
            order,
            idempotency_key,
            datetime.now(UTC),
            platform_key_of(request),
            # "Délivrer" on an order the engine holds, not previewed as it is: the pharmacist is
            # warned first (what it pays shown), nothing dispensed; "Délivrer" again confirms.
            warned=values.get(PREVIEWED) == order.fingerprint(),
        )
    except DispenseHeld as held:
        preview = preview_of(order, held.claim, held.drafted, held.response)
        return await again({"delivrance": HELD_FIRST}, 409, preview)
    except DispenseRefused as refused:
        status = 409 if isinstance(refused, DispenseConflict) else 422
        return await again({refused.field or "delivrance": str(refused)}, status)
    return RedirectResponse(f"/pharmacie/delivrance/{done.number}", status_code=303)


async def own_dispense(request: Request, number: str, pharmacist: AtCounter) -> DispenseView:
    """The pharmacy's own dispense ``number``; another pharmacy's does not exist for this one
    (a French 404)."""
    view = await load_dispense(fhir_of(request), number)
    if view is None or view.pharmacy != pharmacist.pharmacy:
        raise PageRefused(await error_page(request, 404, DISPENSE_NOT_FOUND))
    view.created_at = view.created_at.astimezone(settlement_of(request).schedule.zone)
    return view


OwnDispense = Annotated[DispenseView, Depends(own_dispense)]


@router.get("/pharmacie/delivrance/{number}", response_class=HTMLResponse)
async def dispensed(
    request: Request, number: str, session: SignedIn, pharmacist: AtCounter, view: OwnDispense
) -> Response:
    return _dispense_page(request, session, pharmacist, view)


def _dispense_page(
    request: Request,
    session: Session,
    pharmacist: Pharmacist,
    view: DispenseView,
    error: str = "",
    status_code: int = 200,
) -> Response:
    context = {
        "title": f"Délivrance {view.number}",
        "session": session,
        "pharmacist": pharmacist,
        "view": view,
        "error": error,
    }
    return _page(request, "pharmacie_delivrance.html", context, status_code)


@router.get("/pharmacie/delivrance/{number}/recu", response_class=HTMLResponse)
async def receipt(
    request: Request, number: str, session: SignedIn, pharmacist: AtCounter, view: OwnDispense
) -> Response:
    context = {
        "title": f"Reçu {number}",
        "session": session,
        "pharmacist": pharmacist,
        "view": view,
    }
    return _page(request, "pharmacie_recu.html", context)


@router.post("/pharmacie/delivrance/{number}/annuler", response_class=HTMLResponse)
async def reverse(
    request: Request,
    number: str,
    session: SignedIn,
    pharmacist: AtCounter,
    view: OwnDispense,
    posted: Posted,
) -> Response:
    if view.reversed:
        return _dispense_page(
            request, session, pharmacist, view, "Cette délivrance est déjà annulée.", 409
        )
    if posted.get(CONFIRM) != "oui":  # the first press only asks, saying what will happen
        context = {
            "title": f"Annuler la délivrance {number} ?",
            "session": session,
            "pharmacist": pharmacist,
            "view": view,
        }
        return _page(request, "pharmacie_annuler.html", context)
    zone = settlement_of(request).schedule.zone
    try:
        await reverse_dispense(fhir_of(request), pharmacist, number, datetime.now(UTC), zone)
    except DispenseRefused as refused:
        return _dispense_page(request, session, pharmacist, view, str(refused), 409)
    return RedirectResponse(f"/pharmacie/delivrance/{number}", status_code=303)
