"""Fuzz tests: schemathesis against the OpenAPI document, hypothesis against the Mastodon and
XRPC surfaces, and mutated policy files. Sized by ``BYLINE_TEST_FUZZ_*`` (larger in ``make fuzz``)."""
