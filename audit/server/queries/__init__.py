"""History queries: the read use case and its rules, and the check of the stored history."""
