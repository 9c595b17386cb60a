"""Analytics: the report over rollups."""
