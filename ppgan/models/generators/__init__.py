"""Networks that produce images."""
