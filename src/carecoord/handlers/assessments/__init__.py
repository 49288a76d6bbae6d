"""Assessments: score completed QuestionnaireResponses of the standard instruments carecoord
ships (carecoord.caremodel.instruments), write the results as Observations, and route what they
call for to the domains that act on it (clinical questions, SDOH referrals)."""
