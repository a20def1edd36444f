"""Entry point: `python -m user.client`."""

from user.client.cli import main

if __name__ == "__main__":
    main()
