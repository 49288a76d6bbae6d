"""The service shell around the runtime: metrics, health endpoints, JSON logs, wiring."""
