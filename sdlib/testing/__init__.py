"""Builders of small, structurally real model files, for the tests and the demo server.

Shipped in the package because ``sdlib demo-server`` serves such files offline.
"""
