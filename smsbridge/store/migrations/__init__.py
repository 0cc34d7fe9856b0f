"""Alembic migrations of the message store; run automatically when a store is opened."""
