"""Entry point: `python -m customer.client`."""

from customer.client.cli import main

if __name__ == "__main__":
    main()
