"""Redis: connections (`connection.py`, `embedded.py`) and every key name (`keys.py`)."""
