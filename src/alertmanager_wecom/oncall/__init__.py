"""On-call: schedules (who is on call when, overrides included) and the store of overrides and incidents
that escalation and acknowledgements share across replicas (store.py)."""
