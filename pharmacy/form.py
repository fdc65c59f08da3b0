"""The dispensing form read line by line: a quantity, the product handed over and the price
charged per open line (a line left at 0 is not dispensed), errors kept beside their field."""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation

from pharmacy.dispense import DispenseOrder, DispenseRefused, LineOrder, money
from pharmacy.lookup import OpenLine
from reimbursement.core.adjudication import Books
from reimbursement.core.medicines import Medicine
from reimbursement.medicine_search import index_of


def substitutes(books: Books, line: OpenLine, today: date) -> list[Medicine]:
    """The prescribed product first, then, unless the line is not substitutable, the other
    reimbursable products of its generic group holding as much per box, cheapest first
    (princeps and generics alike: each is labelled by what the list says it is,
    ``Medicine.kind``); the same pack under its other code is not offered twice."""
    prescribed = books.medicines.get(line.ean, today)
    if prescribed is None:
        return []
    if not line.substitutable:
        return [prescribed]
    same = index_of(books.medicines.in_force(today)).substitutes(prescribed)
    others = sorted(
        (m for m in same if not m.same_product_as(prescribed)),
        key=lambda m: (m.ppv is None, m.ppv or 0, m.name),
    )
    return [prescribed, *others]


def _quantity(raw: str) -> Decimal | None:
    try:
        value = Decimal(raw.strip() or "0")
    except InvalidOperation:
        return None
    return value if value.is_finite() and value == value.to_integral_value() else None


def read_order(
    values: dict[str, str], books: Books, today: date
) -> tuple[DispenseOrder | None, dict[str, str]]:
    errors: dict[str, str] = {}
    lines: list[LineOrder] = []
    for name in values:
        if not name.startswith("qte-"):
            continue
        request_id = name.removeprefix("qte-")
        quantity = _quantity(values[name])
        if quantity is None or quantity < 0:
            errors[name] = "Quantité : un nombre entier de boîtes."
            continue
        if quantity == 0:
            continue
        ean = values.get(f"produit-{request_id}", "")
        product = books.medicines.get(ean, today)
        if product is None:
            errors[f"produit-{request_id}"] = "Choisissez le médicament délivré."
            continue
        raw_price = values.get(f"prix-{request_id}", "").strip()
        if not raw_price and product.ppv is None:
            errors[f"prix-{request_id}"] = "PPV non publié dans la liste : indiquez le prix."
            continue
        try:
            price = (
                money(raw_price, f"prix-{request_id}")
                if raw_price or product.ppv is None
                else product.ppv * quantity
            )
        except DispenseRefused as refused:
            errors[f"prix-{request_id}"] = str(refused)
            continue
        seen = _quantity(values.get(f"reste-{request_id}", ""))
        lines.append(LineOrder(request_id, quantity, ean, price, seen or None))
    if not lines and not errors:
        errors["delivrance"] = "Indiquez au moins une quantité à délivrer."
    patient = values.get("patient", "")
    if not patient:
        errors["delivrance"] = "Assuré manquant : recherchez-le à nouveau."
    if errors:
        return None, errors
    order = DispenseOrder(patient, tuple(lines), values.get("tiers_payant") == "on")
    return order, errors
