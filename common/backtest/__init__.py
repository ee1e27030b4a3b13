"""Replaying the live loop's own decisions over history: the replay, its statistics and report, and the cloud fan-out."""
