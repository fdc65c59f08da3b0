"""The reimbursement feature's part of the app, typed: its ``Settlement`` (the engine, the
reference books of the moment, the payment schedule), kept on ``app.state`` by
``reimbursement.feature.install`` and read by the pages of every feature and by the FHIR
operations through these functions, never as an untyped ``app.state`` attribute."""

from __future__ import annotations

from datetime import date

from fastapi import FastAPI, Request

from reimbursement.core.adjudication import Books
from reimbursement.settle import Settlement


def keep_settlement(app: FastAPI, settlement: Settlement) -> None:
    app.state.settlement = settlement


def settlement_on(app: FastAPI) -> Settlement:
    return app.state.settlement


def settlement_of(request: Request) -> Settlement:
    return settlement_on(request.app)


def books_of(request: Request) -> Books:
    """The reference books of the moment (reloaded when a new version is published)."""
    return settlement_on(request.app).books


def today_of(request: Request) -> date:
    """Today in the payment schedule's time zone, by the engine's clock: the day whose tariffs
    and lists apply, and the one every page counts from."""
    settlement = settlement_on(request.app)
    return settlement.clock().astimezone(settlement.schedule.zone).date()
