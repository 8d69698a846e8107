"""Data contracts shared by preprocessing, datasets, models, inference and evaluation."""
