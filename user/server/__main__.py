"""Entry point: `python -m user.server`."""

from global_utils.service import run_service
from global_utils.settings import load_settings
from user.server.bootstrap import build
from user.server.settings import UserSettings


def main() -> None:
    settings = load_settings(UserSettings)
    run_service(lambda: build(settings), settings)


if __name__ == "__main__":
    main()
