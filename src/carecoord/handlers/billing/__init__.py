"""Billable care-management time: CMS rules by program and code, the month's reads, the
ChargeItems."""
