"""Example strategy modules, each loaded by dotted path (`strategies.<name>`)."""
