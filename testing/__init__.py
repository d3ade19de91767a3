"""Reference implementations and model helpers used by the tests, the stress tests and
the benchmarks: naive loops written straight from the SPEC's words, and untouched
copies of timm models. Nothing in the product imports this package."""
