"""The one-shot provisioning step (`python -m provision`): everything the services need made
before they start, with credentials the services never get. See __main__.STEPS."""
