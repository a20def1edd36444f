"""Writes every service's Dockerfile and DockerfileCli from one template (`make dockerfiles`).

The images differ only in what they run: hand-edited copies drifted once (a search-and-replace
turned `useradd` into `promotionadd`), so they are generated, and a test fails when a committed
one differs from what this module writes. All images share the same build and install layers,
so an engine builds the dependencies once for all of them.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("global_errors", "global_utils", "user", "promotion", "audit", "provision")


@dataclass(frozen=True)
class Image:
    service: str
    port: int

    def server(self) -> str:
        return _render(
            f"The {self.service} service",
            f"{self.service}/Dockerfile",
            [
                f"EXPOSE {self.port}",
                "HEALTHCHECK --interval=5s --timeout=3s --start-period=15s --retries=3 \\",
                '  CMD ["python", "-m", "global_utils.grpc.healthprobe"]',
                f'ENTRYPOINT ["python", "-m", "{self.service}.server"]',
            ],
        )

    def cli(self) -> str:
        return _render(
            f"The {self.service} CLI",
            f"{self.service}/DockerfileCli",
            [
                "# A one-shot client, not a server: nothing to probe.",
                "HEALTHCHECK NONE",
                f'ENTRYPOINT ["python", "-m", "{self.service}.client"]',
            ],
        )


IMAGES = (Image("user", 50053), Image("promotion", 50051), Image("audit", 50055))


def provision_image() -> str:
    """The one-shot provisioning step (compose's provision service, Kubernetes' Job)."""
    return _render(
        "The provisioning step (python -m provision)",
        "provision/Dockerfile",
        [
            "# Runs once and exits: nothing to probe.",
            "HEALTHCHECK NONE",
            'ENTRYPOINT ["python", "-m", "provision"]',
        ],
    )


def _render(title: str, path: str, tail: list[str]) -> str:
    copies = [f"COPY {package} ./{package}" for package in PACKAGES]
    lines = [
        f"# {title}. Build from the repository root: docker build -f {path} .",
        "# Written by `make dockerfiles` (devtools/dockerfiles.py): edit the template, not this.",
        "FROM python:3.11-slim AS build",
        "WORKDIR /src",
        "COPY pyproject.toml README.md ./",
        *copies,
        "RUN pip wheel --no-cache-dir --wheel-dir /wheels .",
        "",
        "FROM python:3.11-slim",
        "ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1",
        "RUN useradd --system --uid 10001 --no-create-home gotemp",
        "COPY --from=build /wheels /wheels",
        "RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels",
        "USER gotemp",
        *tail,
    ]
    return "\n".join(lines) + "\n"


def rendered() -> dict[str, str]:
    """Every generated Dockerfile, by path relative to the repository root."""
    files: dict[str, str] = {}
    for image in IMAGES:
        files[f"{image.service}/Dockerfile"] = image.server()
        files[f"{image.service}/DockerfileCli"] = image.cli()
    files["provision/Dockerfile"] = provision_image()
    return files


if __name__ == "__main__":
    for relative, text in rendered().items():
        (REPO_ROOT / relative).write_text(text)
        print(relative)
    sys.exit(0)
