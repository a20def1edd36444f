"""Entry point: `python -m gateway`."""

from global_utils.runtime.stop_signals import catch_stop_signals


def main() -> None:
    catch_stop_signals()  # first: a SIGTERM while importing is not lost (stop_signals)
    from gateway.host import run
    from gateway.settings import GatewaySettings
    from global_utils.config.loading import load_settings

    run(load_settings(GatewaySettings))


if __name__ == "__main__":
    main()
