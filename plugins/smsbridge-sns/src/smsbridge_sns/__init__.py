"""AWS SNS phone (placeholder while installing)."""
