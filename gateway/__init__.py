"""The gateway: Connect (JSON and binary) and gRPC-Web for every service of the suite, each call
forwarded over gRPC to the service, for browsers and curl (goTemp's `micro api` on 8080)."""
