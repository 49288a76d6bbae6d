"""FHIR notifications turned into catalog events: a referral Task's status, any carecoord Task's."""
