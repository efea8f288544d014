"""Benchmarks (not run in CI): the reference GPT-2 loop and the trainer speed comparison."""
