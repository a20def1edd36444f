"""Who is calling: principal and roles, verifying access tokens, the token cache."""
