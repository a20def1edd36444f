"""The gRPC edge: host, interceptors, client channels, TLS, health probe, side port, CLIs."""
