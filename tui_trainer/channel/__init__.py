"""The protocol between trainer and console: event schema, run-dir layout, event writer/follower, control.

Stdlib only, so the console can import it without torch and the one-file trainer can mirror it inline.
"""
