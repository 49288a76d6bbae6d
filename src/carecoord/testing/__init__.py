"""Test kit for handlers (filled in below)."""
