"""Entry point: `python -m user.server`. Its password hashing processes run
`python -m user.server.hashing_worker`, which imports none of this."""

from global_utils.runtime.stop_signals import catch_stop_signals


def main() -> None:
    catch_stop_signals()  # first: a SIGTERM while importing is not lost (stop_signals)
    from global_utils.config.loading import load_settings
    from global_utils.grpc.host import run_service
    from user.server.bootstrap import build
    from user.server.settings import UserSettings

    settings = load_settings(UserSettings)
    run_service(lambda: build(settings), settings)


if __name__ == "__main__":
    main()
