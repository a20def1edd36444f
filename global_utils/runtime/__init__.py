"""Small runtime helpers: backoff, stopping background tasks, time conversions, stop signals
caught from a process's first line, the event loop servers run on."""
