"""Phones that ship with the core distribution."""
