"""The eight views, one per tab."""
