"""The market-data hub: one public WebSocket per process, books fanned out to the workers."""
