"""Settings groups every service shares, loading them from the environment, and secret files."""
