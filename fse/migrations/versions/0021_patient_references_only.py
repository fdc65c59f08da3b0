"""Provenance and AuditEvent ``patient`` index rows only for references to a Patient

``Provenance?patient=`` is ``target.where(resolve() is Patient)`` and ``AuditEvent?patient=``
``entity.what.where(resolve() is Patient)``: their other targets (the sheet's resources a
signature covers, the Claim an access names) were also indexed under ``patient``, a row each
that only a wrong search (``patient=Claim/...``) could find. The index now keeps them out
(``SearchParam.typed``); this removes those already written. Their ``target`` and ``entity``
rows stay.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-04 19:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "DELETE FROM idx_reference WHERE type IN ('Provenance', 'AuditEvent') "
        "AND param = 'patient' AND target_type <> 'Patient'"
    )


def downgrade() -> None:
    """The rows back from the ``target`` and ``entity`` rows they were copies of."""
    op.execute(
        "INSERT INTO idx_reference (resource_pk, type, param, target_type, target_id) "
        "SELECT resource_pk, type, 'patient', target_type, target_id FROM idx_reference "
        "WHERE ((type = 'Provenance' AND param = 'target') "
        "OR (type = 'AuditEvent' AND param = 'entity')) AND target_type <> 'Patient'"
    )
