"""`fse seed --synthetic N`: N insured with their dependants, coverages, and professionals.

Deterministic (same N and seed, same people), identifiers unique by construction (9-digit
immatriculations from 100000000, two-letter CINs from a per-person sequence, INPEs from
400000000), and written with ResourceStore.bulk_create: the same index rows as any write, without
re-validating each resource. The first family is validated against the R4B models and the guide.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import queue
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

from asyncpg.exceptions import UniqueViolationError
from sqlalchemy.exc import IntegrityError

from fhir_profiles.systems import (
    CIN_SYSTEM,
    COVERAGE_SYSTEM,
    DEPENDANT_CONDITION_EXTENSION,
    DEPENDANT_CONDITION_SYSTEM,
    IMMATRICULATION_SYSTEM,
    INPE_SYSTEM,
    INSURER_SYSTEM,
    REGIME_SYSTEM,
    RIGHTS_STATUS_EXTENSION,
    RIGHTS_STATUS_SYSTEM,
)
from fse.config import Settings
from fse.fhir_api.interactions import standalone_service
from fse.resources import validate
from fse.store.repository import new_id

REL = "http://terminology.hl7.org/CodeSystem/subscriber-relationship"
IMMAT_BASE, INPE_BASE, PERSONS_PER_FAMILY, INSURED_PER_DOCTOR = 100_000_000, 400_000_000, 6, 500

FAMILIES = (
    "Alami",
    "Bennani",
    "Berrada",
    "Chraibi",
    "El Amrani",
    "El Fassi",
    "Fikri",
    "Hajji",
    "Idrissi",
    "Jabri",
    "Kettani",
    "Lahlou",
    "Mansouri",
    "Naciri",
    "Ouazzani",
    "Raji",
    "Saadi",
    "Tazi",
    "Tahiri",
    "Zerouali",
    "Benjelloun",
    "Sqalli",
    "Bouzidi",
    "Amrani",
)
MEN = ("Mohamed", "Ahmed", "Youssef", "Omar", "Hassan", "Karim", "Rachid", "Amine", "Mehdi", "Said")
WOMEN = ("Fatima", "Khadija", "Aicha", "Salma", "Nadia", "Latifa", "Sara", "Imane", "Hind", "Zineb")
REGIMES = (("salaries", 60), ("tns", 15), ("tadamon", 20), ("achamil", 5))
RIGHTS = (("ouverts", 90), ("fermes-cotisations", 5), ("stage", 5))
TODAY_YEAR = 2026

Item = tuple[str, dict[str, Any]]


class AlreadyLoaded(Exception):
    """Some of these families are in the database already (their identifiers are taken)."""


def _pick(rng: random.Random, weighted: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([v for v, _ in weighted], weights=[w for _, w in weighted])[0]


def _cin(person: int) -> str:
    """Two letters from person // 10^6, then six digits: unique up to 676 million people."""
    high, low = divmod(person, 1_000_000)
    return f"{chr(65 + high // 26 % 26)}{chr(65 + high % 26)}{low:06d}"


def _person(
    rng: random.Random,
    person: int,
    family: str,
    male: bool,
    birth_year: int,
    immat: str | None,
    adult: bool,
) -> dict[str, Any]:
    identifiers = [{"system": IMMATRICULATION_SYSTEM, "value": immat}] if immat else []
    if adult:
        identifiers.append({"system": CIN_SYSTEM, "value": _cin(person)})
    return {
        "resourceType": "Patient",
        "id": new_id(),
        **({"identifier": identifiers} if identifiers else {}),
        "active": True,
        "name": [
            {"use": "official", "family": family, "given": [rng.choice(MEN if male else WOMEN)]}
        ],
        "gender": "male" if male else "female",
        "birthDate": f"{birth_year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
    }


def _coverage(
    number: str,
    beneficiary: str,
    subscriber: str,
    relationship: str,
    regime: str,
    status: str,
    condition: str | None = None,
) -> dict[str, Any]:
    extensions = [
        {
            "url": RIGHTS_STATUS_EXTENSION,
            "valueCoding": {"system": RIGHTS_STATUS_SYSTEM, "code": status},
        }
    ]
    if condition:
        extensions.append(
            {
                "url": DEPENDANT_CONDITION_EXTENSION,
                "valueCoding": {"system": DEPENDANT_CONDITION_SYSTEM, "code": condition},
            }
        )
    period = (
        {"start": "2026-10-01", "end": "2026-12-31"}
        if status == "stage"
        else {"start": "2024-01-01"}
    )
    return {
        "resourceType": "Coverage",
        "extension": extensions,
        "identifier": [{"system": COVERAGE_SYSTEM, "value": number}],
        "status": "active",
        "type": {"coding": [{"system": REGIME_SYSTEM, "code": regime}]},
        "beneficiary": {"reference": f"Patient/{beneficiary}"},
        "subscriber": {"reference": f"Patient/{subscriber}"},
        "relationship": {"coding": [{"system": REL, "code": relationship}]},
        "period": period,
        "payor": [{"identifier": {"system": INSURER_SYSTEM, "value": "CNSS"}, "display": "CNSS"}],
    }


def family(index: int, seed: int = 2026) -> list[Item]:
    """The index-th synthetic family: the insured, maybe a spouse, 0 to 3 children, coverages."""
    rng = random.Random(seed * 1_000_003 + index)
    immat = f"{IMMAT_BASE + index:09d}"
    regime, status = _pick(rng, REGIMES), _pick(rng, RIGHTS)
    name, male = rng.choice(FAMILIES), rng.random() < 0.5
    first = index * PERSONS_PER_FAMILY
    insured = _person(rng, first, name, male, TODAY_YEAR - rng.randint(25, 75), immat, True)
    items: list[Item] = [
        ("Patient", insured),
        (
            "Coverage",
            _coverage(f"{immat}-00", insured["id"], insured["id"], "self", regime, status),
        ),
    ]
    if rng.random() < 0.5:
        spouse = _person(
            rng, first + 1, name, not male, TODAY_YEAR - rng.randint(25, 75), None, True
        )
        items += [
            ("Patient", spouse),
            (
                "Coverage",
                _coverage(f"{immat}-01", spouse["id"], insured["id"], "spouse", regime, status),
            ),
        ]
    for k in range(rng.choices((0, 1, 2, 3), weights=(30, 25, 25, 20))[0]):
        age = rng.randint(0, 25)
        condition = (
            "handicape"
            if rng.random() < 0.02
            else ("etudiant" if age > 21 and rng.random() < 0.5 else None)
        )
        child = _person(
            rng, first + 2 + k, name, rng.random() < 0.5, TODAY_YEAR - age, None, age >= 18
        )
        items += [
            ("Patient", child),
            (
                "Coverage",
                _coverage(
                    f"{immat}-{2 + k:02d}",
                    child["id"],
                    insured["id"],
                    "child",
                    regime,
                    status,
                    condition,
                ),
            ),
        ]
    if index % INSURED_PER_DOCTOR == 0:
        items.append(
            (
                "Practitioner",
                {
                    "resourceType": "Practitioner",
                    "id": new_id(),
                    "identifier": [
                        {
                            "system": INPE_SYSTEM,
                            "value": f"{INPE_BASE + index // INSURED_PER_DOCTOR:09d}",
                        }
                    ],
                    "active": True,
                    "name": [{"family": rng.choice(FAMILIES), "given": [rng.choice(MEN + WOMEN)]}],
                },
            )
        )
    return items


def families(start: int, count: int, seed: int) -> Iterator[list[Item]]:
    for index in range(start, start + count):
        yield family(index, seed)


Batch = tuple[int, int]
"""(first family, number of families): one transaction."""


def _batches(start: int, count: int, batch: int) -> list[Batch]:
    return [
        (first, min(batch, start + count - first)) for first in range(start, start + count, batch)
    ]


async def _load_batches(
    settings: Settings, batches: list[Batch], seed: int, done: Callable[[int, int], None]
) -> None:
    """Write each batch in its own transaction; ``done(families, resources)`` after each."""
    async with standalone_service(settings) as service:
        for first, n in batches:
            items = [item for f in families(first, n, seed) for item in f]
            try:
                async with service.store.transaction() as conn:
                    written = await service.store.bulk_create(conn, items)
            except (IntegrityError, UniqueViolationError) as exc:
                raise AlreadyLoaded(f"families from {first} are already loaded") from exc
            done(n, written)


class _Progress:
    """Families and resources stored so far, in one process or summed from several, told to
    ``report(families, resources, seconds)`` after each batch."""

    def __init__(self, report: Callable[[int, int, float], None] | None) -> None:
        self.report, self.began, self.families, self.resources = report, time.monotonic(), 0, 0

    def __call__(self, families: int, resources: int) -> None:
        self.families, self.resources = self.families + families, self.resources + resources
        if self.report:
            self.report(self.families, self.resources, time.monotonic() - self.began)


def _validated_generator(start: int, seed: int) -> None:
    for _, resource in family(start, seed):  # the generator's output must meet the guide
        validate(dict(resource))


async def load_synthetic(
    settings: Settings,
    count: int,
    seed: int = 2026,
    start: int = 0,
    batch: int = 500,
    progress: Callable[[int, int, float], None] | None = None,
) -> int:
    """Write ``count`` synthetic families in this process; returns the number of resources
    stored."""
    _validated_generator(start, seed)
    done = _Progress(progress)
    await _load_batches(settings, _batches(start, count, batch), seed, done)
    return done.resources


def default_jobs(settings: Settings) -> int:
    """One loader per core on PostgreSQL (while one waits on its COPY, another builds its
    rows); one on SQLite, which takes one writer at a time."""
    return max(1, os.cpu_count() or 1) if settings.is_postgres else 1


def _loader(settings: Settings, batches: list[Batch], seed: int, reports: Any) -> None:
    """One loader process: its batches, each reported as ("done", families, resources), then
    ("end",) or ("already", message)."""
    try:
        asyncio.run(
            _load_batches(settings, batches, seed, lambda n, w: reports.put(("done", n, w)))
        )
    except AlreadyLoaded as exc:
        reports.put(("already", str(exc)))
    else:
        reports.put(("end",))


def load_synthetic_in_parallel(
    settings: Settings,
    count: int,
    seed: int = 2026,
    start: int = 0,
    batch: int = 500,
    jobs: int = 1,
    progress: Callable[[int, int, float], None] | None = None,
) -> int:
    """``load_synthetic`` over ``jobs`` processes, the batches dealt out in turn (so the
    families load roughly in order); the first family already loaded stops every loader."""
    batches = _batches(start, count, batch)
    jobs = max(1, min(jobs, len(batches)))
    if jobs == 1:
        return asyncio.run(load_synthetic(settings, count, seed, start, batch, progress))
    _validated_generator(start, seed)
    context = multiprocessing.get_context("spawn")  # no event loop or pool inherited
    reports = context.Queue()
    loaders = [
        context.Process(target=_loader, args=(settings, batches[j::jobs], seed, reports))
        for j in range(jobs)
    ]
    for loader in loaders:
        loader.start()
    done, running, already = _Progress(progress), jobs, None
    try:
        while running:
            try:
                report = reports.get(timeout=1.0)
            except queue.Empty:
                if any(p.exitcode not in (None, 0) for p in loaders):
                    raise RuntimeError("a loader process failed; see its error above") from None
                continue
            if report[0] == "done":
                done(report[1], report[2])
            else:
                running -= 1
                if report[0] == "already":
                    already = report[1]
                    break
    finally:
        for loader in loaders:
            if running:  # stopped early: the others are still writing
                loader.terminate()
            loader.join()
    if already is not None:
        raise AlreadyLoaded(already)
    return done.resources
