"""Versioned migrations, oldest first. Never edit one that was released: add a new one."""
