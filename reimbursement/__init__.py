"""Reimbursement engine: rights, TNR tariffs, adjudication, ledger, payments (issue 4)."""
