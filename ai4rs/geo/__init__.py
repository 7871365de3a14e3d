"""Georeferenced scenes: reading GeoTIFF / COG scenes tile by tile (GDAL through rasterio) and
writing detections as map layers (GeoPackage, GeoJSON). Needs the ``geo`` extra
(``pip install -e ".[geo]"``: rasterio and pyogrio, whose wheels carry GDAL)."""
