"""POP3 for Python (being built)."""
