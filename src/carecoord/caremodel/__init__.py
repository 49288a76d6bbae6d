"""carecoord's care model on FHIR: the code systems and value sets it uses (terminology), its
deterministic business identifiers, the profiles it declares and checks (Gravity SDOHCC, US
Core), the FHIR workflow state machine, the event-outbox record, and the builders of the care
resources (`builders`: CarePlan, CareTeam, CommunicationRequest, Communication, Task, ...)."""
