"""The carecoord event-runtime benchmark (`make bench`; not part of the test suite)."""
