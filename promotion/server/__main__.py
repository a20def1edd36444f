"""Entry point: `python -m promotion.server`."""

from global_utils.config.loading import load_settings
from global_utils.grpc.host import run_service
from promotion.server.bootstrap import build
from promotion.server.settings import PromotionSettings


def main() -> None:
    settings = load_settings(PromotionSettings)
    run_service(lambda: build(settings), settings)


if __name__ == "__main__":
    main()
