"""`fse seed --synthetic`: deterministic families that meet the guide, searchable like any data."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from fse.resources import validation_issues
from fse.seed.synthetic import AlreadyLoaded, family, load_synthetic, load_synthetic_in_parallel
from tests.conftest import Platform

IMMAT = "https://fse.cnss.ma/fhir/sid/immatriculation"
CIN = "https://fse.cnss.ma/fhir/sid/cin"


def test_families_are_deterministic_and_meet_the_guide() -> None:
    def people(index: int) -> list[tuple[object, object]]:
        return [(r.get("name"), r.get("birthDate")) for t, r in family(index) if t == "Patient"]

    assert people(7) == people(7) and people(7) != people(8)
    for index in range(200):
        for rtype, resource in family(index):
            assert validation_issues(dict(resource)) == [], (index, rtype)


def test_identifiers_are_unique_across_families() -> None:
    seen: set[tuple[str, str]] = set()
    for index in range(2000):
        for _, resource in family(index):
            for ident in resource.get("identifier", []):
                key = (ident["system"], ident["value"])
                assert key not in seen, key
                seen.add(key)


async def test_loaded_families_are_searchable_and_not_loaded_twice(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    stored = await load_synthetic(platform.settings, 40, batch=16)
    expected = sum(len(family(i)) for i in range(40))
    assert stored == expected
    counts = await platform.row_counts()
    assert counts["resources"] == counts["resource_versions"] == expected
    insured = next(r for t, r in family(25) if t == "Patient")
    immat, cin = insured["identifier"][0]["value"], insured["identifier"][1]["value"]
    for criteria in (f"{IMMAT}|{immat}", f"{CIN}|{cin}"):
        bundle = (await client.get("/fhir/Patient", params={"identifier": criteria})).json()
        assert [e["resource"]["name"] for e in bundle["entry"]] == [insured["name"]]
    coverages = (
        await client.get("/fhir/Coverage", params={"subscriber.identifier": f"{IMMAT}|{immat}"})
    ).json()
    assert len(coverages["entry"]) == sum(1 for t, _ in family(25) if t == "Coverage")
    with pytest.raises(AlreadyLoaded):
        await load_synthetic(platform.settings, 5, start=30)
    assert (await platform.row_counts())["resources"] == expected


async def test_loader_processes_share_the_families_and_stop_at_one_already_loaded(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    """``fse seed --synthetic N --jobs 2``: every family once, whichever process wrote it;
    progress adds up; a range overlapping a loaded one is refused, nothing more stored."""
    reports: list[tuple[int, int]] = []
    stored = await asyncio.to_thread(
        load_synthetic_in_parallel,
        platform.settings,
        60,
        batch=7,
        jobs=2,
        progress=lambda done, stored, _: reports.append((done, stored)),
    )
    expected = sum(len(family(i)) for i in range(60))
    assert stored == expected
    assert reports[-1] == (60, expected)
    counts = await platform.row_counts()
    assert counts["resources"] == counts["resource_versions"] == expected
    for index in (0, 6, 7, 59):  # the first and last family of batches of either process
        insured = next(r for t, r in family(index) if t == "Patient")
        immat = insured["identifier"][0]["value"]
        bundle = (
            await client.get("/fhir/Patient", params={"identifier": f"{IMMAT}|{immat}"})
        ).json()
        assert [e["resource"]["name"] for e in bundle["entry"]] == [insured["name"]]
    with pytest.raises(AlreadyLoaded):  # both batches (50-56, 57-63) overlap what is loaded
        await asyncio.to_thread(
            load_synthetic_in_parallel, platform.settings, 14, start=50, batch=7, jobs=2
        )
    assert (await platform.row_counts())["resources"] == expected
