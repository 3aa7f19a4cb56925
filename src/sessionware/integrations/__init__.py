"""Framework integrations; each imports its framework, so import the one you use."""
