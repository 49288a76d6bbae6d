"""Closed-loop community referrals: a social need to an SDOHCC ServiceRequest and Task, the
directory ranking, consent to share, and the referral's outcome."""
