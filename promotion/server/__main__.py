"""Entry point: `python -m promotion.server`."""

from global_utils.runtime.stop_signals import catch_stop_signals


def main() -> None:
    catch_stop_signals()  # first: a SIGTERM while importing is not lost (stop_signals)
    from global_utils.config.loading import load_settings
    from global_utils.grpc.host import run_service
    from promotion.server.bootstrap import build
    from promotion.server.settings import PromotionSettings

    settings = load_settings(PromotionSettings)
    run_service(lambda: build(settings), settings)


if __name__ == "__main__":
    main()
