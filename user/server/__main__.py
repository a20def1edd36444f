"""Entry point: `python -m user.server`.

The password hashing processes import this module again when they start (multiprocessing's
spawn does that with the main module): everything the service needs is imported inside main(),
so they stay small."""


def main() -> None:
    from global_utils.config.loading import load_settings
    from global_utils.grpc.host import run_service
    from user.server.bootstrap import build
    from user.server.settings import UserSettings

    settings = load_settings(UserSettings)
    run_service(lambda: build(settings), settings)


if __name__ == "__main__":
    main()
