"""Entry point: `python -m customer.server`."""

from customer.server.bootstrap import build
from customer.server.settings import CustomerSettings
from global_utils.config.loading import load_settings
from global_utils.grpc.host import run_service


def main() -> None:
    settings = load_settings(CustomerSettings)
    run_service(lambda: build(settings), settings)


if __name__ == "__main__":
    main()
