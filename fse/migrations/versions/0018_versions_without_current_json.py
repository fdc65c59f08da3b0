"""a version's JSON stored once: history rows keep only superseded versions' JSON

The current version's JSON is in ``resources``; its history row had a second copy (a third of
the bytes a settled sheet stored). Upgrading clears those copies; the space is reused by the
next writes (``VACUUM FULL resource_versions`` gives it back to the system at once).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03 20:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

_CURRENT = """EXISTS (SELECT 1 FROM resources r
    WHERE r.pk = resource_versions.resource_pk AND r.version = resource_versions.version)"""


def upgrade() -> None:
    op.execute(
        f"UPDATE resource_versions SET content = NULL WHERE content IS NOT NULL AND {_CURRENT}"
    )


def downgrade() -> None:
    op.execute(
        "UPDATE resource_versions SET content = (SELECT r.content FROM resources r"
        " WHERE r.pk = resource_versions.resource_pk)"
        f" WHERE content IS NULL AND method <> 'DELETE' AND {_CURRENT}"
    )
