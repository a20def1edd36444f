"""Entry point: `python -m gateway`."""

from gateway.host import run
from gateway.settings import GatewaySettings
from global_utils.config.loading import load_settings


def main() -> None:
    run(load_settings(GatewaySettings))


if __name__ == "__main__":
    main()
