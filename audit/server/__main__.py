"""Entry point: `python -m audit.server`."""

from audit.server.bootstrap import build
from audit.server.settings import AuditSettings
from global_utils.config.loading import load_settings
from global_utils.grpc.host import run_service


def main() -> None:
    settings = load_settings(AuditSettings)
    run_service(lambda: build(settings), settings)


if __name__ == "__main__":
    main()
