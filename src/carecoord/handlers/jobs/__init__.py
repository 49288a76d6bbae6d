"""Jobs over the whole caseload: the sweeper's time-based triggers and the care manager's worklist.
They read every domain's state, so they sit above the domains."""
