"""Entry point: `python -m product.client`."""

from product.client.cli import main

if __name__ == "__main__":
    main()
