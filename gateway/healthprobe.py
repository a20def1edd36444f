"""Container health probe: GET /healthz on the gateway's own port, exit 0 only when SERVING.

Usage: python -m gateway.healthprobe [port]  (default: the port of MICRO_SERVER_ADDRESS)."""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

from global_utils.discovery.registry import parse_endpoint

TIMEOUT_SECONDS = 3.0


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        port = int(argv[1])
    else:
        address = os.environ.get("MICRO_SERVER_ADDRESS", ":8080")
        port = parse_endpoint(address, default_host="127.0.0.1").port
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/healthz", timeout=TIMEOUT_SECONDS
        ) as reply:
            return 0 if reply.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"healthprobe: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
