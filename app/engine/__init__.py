"""The engine's thread and what crosses to it: the only part of the app that loads, runs or judges a model."""
