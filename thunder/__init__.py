"""Thunder: the in-network post store built from Parquet post logs (issue "Thunder")."""
