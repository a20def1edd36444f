"""Helpers the services' own rules use: validation checks and page limits."""
