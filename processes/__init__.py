"""pygeoapi process plugins: thin adapters over app_package."""
