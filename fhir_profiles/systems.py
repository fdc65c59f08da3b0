"""The AMO guide's URLs, named once: identifier systems, code systems, extensions, profiles,
operations and topics. Product code says ``CARE_SHEET_SYSTEM``, never the URL, so a system is
spelt in one place (tests keep literal URLs: they are the published contract).

Every NamingSystem, CodeSystem and extension of the guide (``definitions/``) has its name here
(tests/fhir_profiles/test_systems.py); the platform's own identifiers (consultation, acte,
lot-paiement...), operations and topics are named here too.
"""

from __future__ import annotations

from typing import Final

CANONICAL: Final = "https://fse.cnss.ma/fhir"
"""Base of every canonical URL of the guide."""

_SID = f"{CANONICAL}/sid"
_CS = f"{CANONICAL}/CodeSystem"
_SD = f"{CANONICAL}/StructureDefinition"
_OD = f"{CANONICAL}/OperationDefinition"

# Identifier systems (Identifier.system)
IMMATRICULATION_SYSTEM: Final = f"{_SID}/immatriculation"
CIN_SYSTEM: Final = f"{_SID}/cin"
"""The identifier sealed at rest (NamingSystem-cin.json)."""
INPE_SYSTEM: Final = f"{_SID}/inpe"
RIB_SYSTEM: Final = f"{_SID}/rib"
IBAN_SYSTEM: Final = "urn:iso:std:iso:13616"
COVERAGE_SYSTEM: Final = f"{_SID}/couverture"
INSURER_SYSTEM: Final = f"{_SID}/organisme"
CARE_SHEET_SYSTEM: Final = f"{_SID}/fse"
"""The care-sheet number (FSE-...), on the Claim."""
CONSULTATION_SYSTEM: Final = f"{_SID}/consultation"
"""The care-sheet number on its Encounter."""
ACT_SYSTEM: Final = f"{_SID}/acte"
PRESCRIPTION_SYSTEM: Final = f"{_SID}/prescription"
"""The care-sheet number grouping its MedicationRequests and ServiceRequests."""
PRESCRIPTION_LINE_SYSTEM: Final = f"{_SID}/ligne-prescription"
LAB_SYSTEM: Final = f"{_SID}/analyse"
DISPENSE_SYSTEM: Final = f"{_SID}/delivrance"
RESPONSE_SYSTEM: Final = f"{_SID}/fse-reponse"
EOB_SYSTEM: Final = f"{_SID}/fse-decompte"
PAYMENT_BATCH_SYSTEM: Final = f"{_SID}/lot-paiement"
CLIENT_ID_SYSTEM: Final = f"{_SID}/oauth-client"
GTIN_SYSTEM: Final = "urn:oid:1.3.160"
"""GS1's GTIN (EAN-13 of a medicine box), as the platform writes it."""
GTIN_SYSTEMS: Final = (GTIN_SYSTEM, "https://www.gs1.org/gtin")
"""Every URI the GTIN is read under (NamingSystem-gtin.json: its OID and its preferred URI)."""

# Code systems (Coding.system)
NGAP_SYSTEM: Final = f"{_CS}/ngap"
NGAP_ACTS_SYSTEM: Final = f"{_CS}/ngap-actes"
FLAT_RATE_SYSTEM: Final = f"{_CS}/tnr-forfait"
REGIME_SYSTEM: Final = f"{_CS}/regime"
RIGHTS_STATUS_SYSTEM: Final = f"{_CS}/rights-status"
DEPENDANT_CONDITION_SYSTEM: Final = f"{_CS}/dependant-condition"
EXONERATION_SYSTEM: Final = f"{_CS}/exoneration"
CARE_CATEGORY_SYSTEM: Final = f"{_CS}/categorie-soins"
REJECTION_REASON_SYSTEM: Final = f"{_CS}/rejection-reason"
ERROR_CODE_SYSTEM: Final = f"{_CS}/fse-error"

# Extensions (StructureDefinition)
RIGHTS_STATUS_EXTENSION: Final = f"{_SD}/rights-status"
DEPENDANT_CONDITION_EXTENSION: Final = f"{_SD}/dependant-condition"
EXONERATION_PERIOD_EXTENSION: Final = f"{_SD}/exoneration-period"
NGAP_COEFFICIENT_EXTENSION: Final = f"{_SD}/ngap-coefficient"
REMAINING_QUANTITY_EXTENSION: Final = f"{_SD}/remaining-quantity"
SIGNING_KEY_EXTENSION: Final = f"{_SD}/signing-key"
IDENTIFIER_RULE_EXTENSION: Final = f"{_SD}/identifier-rule"
SUBSCRIPTION_DELIVERIES_EXTENSION: Final = f"{_SD}/subscription-deliveries"
ELIGIBILITY_RESPONSE_EXTENSION: Final = f"{_SD}/eligibility-response"

# Operations and topics
CLAIM_RESPONSE_REVIEW_OPERATION: Final = f"{_OD}/ClaimResponse-review"
PUBLISH_TARIFFS_OPERATION: Final = f"{_OD}/CodeSystem-publish-tariffs"
SUBSCRIPTION_TOPIC_BASE: Final = f"{CANONICAL}/SubscriptionTopic/"
"""A topic's canonical URL is this base followed by its name."""
