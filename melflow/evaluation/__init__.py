"""Metrics, figures and the evaluation of a model bundle on a split of the feature store."""
