"""The shared read model of a patient's care: plans, team, programs, periods, business ids.

Every domain package imports this one and the layers below, never another domain."""
