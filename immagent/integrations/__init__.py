"""Storage for the agent frameworks people already use, on immagent threads (optional extras)."""
