"""Care-management programs: enrolment, consent, disenrolment, monthly outreach and its
escalation, care-management Tasks, caseload assignment and reassignment, TCM episodes."""
