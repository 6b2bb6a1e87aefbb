"""Map evaluation: a class map compared with reference polygons.

`mapping` (how reference values name map classes), `reference` (reading and rasterising the
polygons onto the map's grid), `metrics` (confusion matrix, agreement, kappa: numpy only),
`result` (the typed record), `report` (its JSON document, picture and summary) and `evaluate`
(the library entry point: reads the inputs, writes the report atomically).
"""
