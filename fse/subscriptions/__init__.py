"""FHIR rest-hook Subscriptions: CNSS systems are pushed the outbox's events instead of polling.

``api`` manages the Subscription resources, ``fanout`` turns each outbox event into one delivery
per matching subscription, ``delivery`` posts them with retries, ``worker`` runs both.
"""
