"""Training data: EuroSAT chips (`eurosat`), their STAC catalog (`eurosat_stac`), the official
download (`download`), labelled chips from any STAC source (`dataset`)."""
