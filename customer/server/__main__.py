"""Entry point: `python -m customer.server`."""

from global_utils.runtime.stop_signals import catch_stop_signals


def main() -> None:
    catch_stop_signals()  # first: a SIGTERM while importing is not lost (stop_signals)
    from customer.server.bootstrap import build
    from customer.server.settings import CustomerSettings
    from global_utils.config.loading import load_settings
    from global_utils.grpc.host import run_service

    settings = load_settings(CustomerSettings)
    run_service(lambda: build(settings), settings)


if __name__ == "__main__":
    main()
