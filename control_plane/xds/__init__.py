"""The xDS side: immutable snapshots, the cache that holds them, and the ADS server."""
