"""Earth-observation facts and products: Sentinel-2 bands and EuroSAT's conventions (`bands`),
Sentinel-2 products from STAC items or SAFE folders (`sentinel2`)."""
