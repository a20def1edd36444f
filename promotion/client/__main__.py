"""Entry point: `python -m promotion.client`."""

from promotion.client.cli import main

if __name__ == "__main__":
    main()
