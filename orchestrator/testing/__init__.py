"""The replay harness: the live worker, order manager and risk code against an in-process venue."""
