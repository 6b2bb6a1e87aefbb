"""Inference: reading products (`reader`), chip grids and stitching (`tiling`), the classifier,
whole-product classification (`classify`), COGs (`cog`), STAC items (`items`), water bodies
(`water`, `water_bodies`)."""
