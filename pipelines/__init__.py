"""Apache Beam pipelines (proposals, batch inference, evaluation)."""
