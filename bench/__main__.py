"""``python -m bench`` (``make bench``): every phase in turn, or one with ``--only-…``.

The phases, in order: the reference data in one worker, the FHIR API over HTTP (or, with
``--registry-db``, lookups of insured in a synthetic registry, and nothing else), the
reimbursement (core, ``Claim/$submit``, a payment batch), the doctor's sheets signed and settled
through the prescriber's pages, dispensing, notification delivery.
The access checks run only when asked (``--only-access``), and so does the soak
(``--only-soak``: open-loop ``Claim/$submit`` at ``--rate`` per second for ``--minutes``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="benchmark the platform on PostgreSQL over HTTP"
    )
    parser.add_argument("--workers", type=int, default=2, help="server processes (default 2)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument("--seconds", type=float, default=15, help="per operation (default 15)")
    parser.add_argument(
        "--registry-db",
        help="PostgreSQL URL of a registry loaded by fse seed --synthetic N: time insured lookups",
    )
    parser.add_argument(
        "--payment-claims",
        type=int,
        default=1_000_000,
        help="approved claims in the payment-batch benchmark (default 1,000,000; 0 skips it)",
    )
    parser.add_argument(
        "--only-reimbursement", action="store_true", help="skip the FHIR API phases"
    )
    parser.add_argument(
        "--only-pharmacy",
        action="store_true",
        help="only the dispensing phases: the service in-process, then at the counter over HTTP",
    )
    parser.add_argument(
        "--only-signing",
        action="store_true",
        help="only the doctor's sheets signed and settled through the prescriber's pages",
    )
    parser.add_argument(
        "--only-access",
        action="store_true",
        help="only the access model's checks: CPU per request with and without them",
    )
    parser.add_argument(
        "--only-subscriptions", action="store_true", help="only notification delivery"
    )
    parser.add_argument(
        "--only-soak",
        action="store_true",
        help="only the soak: open-loop Claim/$submit at --rate per second for --minutes",
    )
    parser.add_argument(
        "--rate", type=float, default=40, help="soak arrivals per second (default 40)"
    )
    parser.add_argument(
        "--minutes", type=float, default=10, help="soak duration in minutes (default 10)"
    )
    parser.add_argument(
        "--only-reference",
        action="store_true",
        help="only the medicines list: load time, memory and search cost per worker",
    )
    parser.add_argument(
        "--sqlite",
        action="store_true",
        help="with --only-reimbursement --payment-claims 0 ($submit only) or --only-signing: "
        "on SQLite files instead of PostgreSQL, to compare (bytes stored are not measured)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run what ``argv`` asks; 1 if any phase saw an error."""
    args = build_parser().parse_args(argv)
    # Imported here: --help answers without loading the platform.
    from bench import (
        access,
        counter,
        dispensing,
        fhir_api,
        harness,
        notifications,
        reference,
        settlement,
        signing,
        soak,
    )

    if args.sqlite:
        if not (args.only_signing or (args.only_reimbursement and not args.payment_claims)):
            print("--sqlite: only with --only-signing, or --only-reimbursement --payment-claims 0")
            return 2
        directory = Path(tempfile.mkdtemp(prefix="fse-bench-sqlite-"))
        harness.SQLITE_DIR[:] = [directory]
        print(f"SQLite databases in {directory}", flush=True)
        if args.only_signing:
            return signing.run(args.workers, args.clients, args.seconds)
        return settlement.run(args.workers, args.clients, args.seconds, 0)
    if args.only_soak:
        return soak.run(args.workers, args.rate, args.minutes)
    if args.only_reference:
        return reference.run()
    if args.only_pharmacy:
        in_process = dispensing.run(args.clients, args.seconds)
        return counter.run(args.workers, args.clients, args.seconds) or in_process
    if args.only_signing:
        return signing.run(args.workers, args.clients, args.seconds)
    if args.only_access:
        return access.run()
    if args.only_subscriptions:
        return notifications.run()
    code = reference.run()
    if not args.only_reimbursement:
        code = fhir_api.run(args.workers, args.clients, args.seconds, args.registry_db) or code
    if args.registry_db:
        return code
    settled = settlement.run(args.workers, args.clients, args.seconds, args.payment_claims)
    signed = signing.run(args.workers, args.clients, args.seconds)
    dispensed = dispensing.run(args.clients, args.seconds)
    at_counter = counter.run(args.workers, args.clients, args.seconds)
    notified = notifications.run()
    return code or settled or signed or dispensed or at_counter or notified


if __name__ == "__main__":
    sys.exit(main())
