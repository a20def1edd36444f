"""Entry point: `python -m audit.client`."""

from audit.client.cli import main

if __name__ == "__main__":
    main()
