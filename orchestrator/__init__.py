"""orchestrator: an event-driven, rate-limit-aware order and transfer orchestrator for Kraken."""

__version__ = "0.1.0"
