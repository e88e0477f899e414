"""The orchestrating side (standard library only): environments, the plan, running drivers."""
