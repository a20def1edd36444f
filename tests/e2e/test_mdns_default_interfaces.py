"""The registry's default (MDNS_INTERFACES empty: every interface, as in containers), run where
it is allowed to: a network namespace this test makes, holding only its own loopback."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from devtools.stack import REPO_ROOT

# Runs inside the namespace: two registries built from default settings, one registers a
# server listening on all interfaces, the other finds it.
_PROBE = textwrap.dedent(
    """
    import asyncio
    from global_utils.discovery.registry import Endpoint
    from global_utils.config.settings import RegistrySettings

    async def main() -> None:
        settings = RegistrySettings()
        assert settings.mdns_interfaces == "" and settings.micro_registry == "mdns"
        server, client = settings.create_registry(), settings.create_registry()
        await server.start()
        await client.start()
        try:
            await server.register("user", Endpoint("0.0.0.0", 50053))
            found = await client.resolve("user", timeout=10)
            print(" ".join(endpoint.target for endpoint in found))
        finally:
            await server.stop()
            await client.stop()

    asyncio.run(main())
    """
)


def in_new_network_namespace(*command: str) -> subprocess.CompletedProcess[str]:
    unshare = ["unshare", "--net"] if os.geteuid() == 0 else ["unshare", "--map-root-user", "--net"]
    setup = 'ip link set lo up && ip link set lo multicast on && exec "$@"'
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MDNS_", "MICRO_"))}
    return subprocess.run(
        [*unshare, "sh", "-c", setup, "sh", *command],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_default_settings_register_and_resolve_on_every_interface() -> None:
    result = in_new_network_namespace(sys.executable, "-c", _PROBE)
    assert result.returncode == 0, result.stderr
    # the namespace's only address is its loopback: that is what is advertised
    assert result.stdout.split() == ["127.0.0.1:50053"]
