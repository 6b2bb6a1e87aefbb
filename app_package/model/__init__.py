"""The model: what a saved model is (`spec`, no torch), the networks (`networks`), loading from
paths, STAC and MLflow (`source`)."""
