"""Clinical questions routed to the provider (the care manager is not the doctor), their
escalation when unanswered, and the answer brought back to the care manager."""
