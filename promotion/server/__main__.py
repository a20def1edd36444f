"""Entry point: `python -m promotion.server`."""

from global_utils.grpc_host import run_service
from global_utils.settings import load_settings
from promotion.server.bootstrap import build
from promotion.server.settings import PromotionSettings


def main() -> None:
    settings = load_settings(PromotionSettings)
    run_service(lambda: build(settings), settings)


if __name__ == "__main__":
    main()
