"""The DAGs: wiring, conditions, resources and GPU placement; compile and local-run helpers."""
