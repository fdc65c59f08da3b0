"""The pure reimbursement core: reference data and one care sheet in, a decision out.

No I/O, no web, no clock: the service (``reimbursement.service``) reads the books from their data
files, gathers the insured's rights and history from the store, passes today's date in, and
writes what comes out. That keeps every rule testable with plain values and cheap to run.
"""
