"""Registration and discovery of service instances: multicast DNS, static addresses, DNS."""
