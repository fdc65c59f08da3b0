"""Pharmacist's lookup and dispensing (issue 6)."""
