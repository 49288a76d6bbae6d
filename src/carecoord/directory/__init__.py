"""The community-resource directory: Open Referral HSDS 3.0 in each published form (a service,
an organization, a list or API page, the CSV datapackage, a live API) imported as FHIR
HealthcareService + Organization + Location of one shape (`shape`, `builders`), with 211/AIRS
and Open Eligibility taxonomies mapped to Gravity SDOH domains."""
