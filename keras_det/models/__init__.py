"""Detection models, one module per system of the seed."""
