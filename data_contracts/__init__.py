"""Data contracts: what the input manifest must hold, and (later) the quality suites of a release."""
